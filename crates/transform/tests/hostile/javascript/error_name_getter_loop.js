// expect: failed row
// says: time limit of
// The thrown error is read after the call: its name, message and stack may be getters.
function transform(p) {
  const e = new Error("boom");
  Object.defineProperty(e, "name", { get() { while (true) {} } });
  throw e;
}
