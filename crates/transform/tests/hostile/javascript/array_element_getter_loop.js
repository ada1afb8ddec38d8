// expect: failed row
// says: time limit of
function transform(p) {
  const a = ["a", "b"];
  Object.defineProperty(a, 1, { get() { while (true) {} } });
  return { id: "x", arr: a };
}
