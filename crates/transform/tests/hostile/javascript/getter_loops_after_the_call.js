// expect: failed row
// says: time limit of
// The escape that was seen: a getter on the returned object runs after the timed call.
function transform(p) {
  const o = { id: "x" };
  Object.defineProperty(o, "email", { enumerable: true, get() { while (true) {} } });
  return o;
}
