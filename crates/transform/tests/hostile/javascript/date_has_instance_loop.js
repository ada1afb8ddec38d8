// expect: failed row
// says: time limit of
function transform(p) {
  Object.defineProperty(Date, Symbol.hasInstance, { value() { while (true) {} } });
  return { id: "x", j: {} };
}
