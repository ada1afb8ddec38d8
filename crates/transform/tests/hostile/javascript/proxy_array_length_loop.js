// expect: failed row
// says: time limit of | Proxy | length
function transform(p) {
  return { id: "x", arr: new Proxy([], { get(t, k) { if (k === "length") { while (true) {} } return "a"; } }) };
}
