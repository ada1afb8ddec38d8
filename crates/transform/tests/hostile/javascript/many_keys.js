// expect: failed row
// says: output limit of | memory limit of | time limit of
function transform(p) {
  const o = {};
  for (let i = 0; i < 500000; i++) o["key" + i] = i;
  return { id: "x", j: o };
}
