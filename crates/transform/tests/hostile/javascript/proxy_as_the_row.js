// expect: failed row
// says: time limit of | Proxy
function transform(p) {
  return new Proxy({ id: "x" }, { ownKeys() { while (true) {} } });
}
