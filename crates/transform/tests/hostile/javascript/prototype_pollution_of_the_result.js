// expect: failed row
// says: does not accept null | not configurable
// Inherited properties are not part of the row: the polluted id is not read.
function transform(p) {
  Object.prototype.id = "polluted";
  Object.defineProperty(Object.prototype, "s", { get() { while (true) {} }, enumerable: true });
  return {};
}
