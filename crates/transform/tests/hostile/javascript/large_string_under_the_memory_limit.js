// expect: failed row
// says: output limit of | time limit of
function transform(p) {
  return { id: "x", s: "y".repeat(6 << 20) };
}
