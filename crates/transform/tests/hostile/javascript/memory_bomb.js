// expect: failed row
// says: memory limit of | time limit of
function transform(p) {
  const a = [];
  while (true) a.push(new Float64Array(1 << 20));
}
