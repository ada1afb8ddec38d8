// expect: failed row
// says: output limit of
function transform(p) {
  const a = [];
  a.length = 2 ** 32 - 1;
  return { id: "x", j: a };
}
