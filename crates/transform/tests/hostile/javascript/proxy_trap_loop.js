// expect: failed row
// says: time limit of | Proxy
function transform(p) {
  const trap = { ownKeys() { while (true) {} }, get() { while (true) {} }, getOwnPropertyDescriptor() { while (true) {} } };
  return { id: "x", j: new Proxy({}, trap) };
}
