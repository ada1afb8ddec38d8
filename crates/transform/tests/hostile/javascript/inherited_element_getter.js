// expect: failed row
// says: time limit of
// Prototype pollution reached by the host's reading of a sparse array.
function transform(p) {
  Object.defineProperty(Array.prototype, 0, { get() { while (true) {} }, configurable: true });
  const a = [];
  a.length = 3;
  return { id: "x", arr: a };
}
