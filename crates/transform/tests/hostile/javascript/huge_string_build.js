// expect: failed row
// says: memory limit of | string too long
function transform(p) {
  let s = "x";
  while (true) {
    s = s + s;
  }
}
