// expect: refused
// says: top-level code ran longer than | interrupted | columns
var columns = new Proxy(["id"], { get() { while (true) {} } });
function transform(p) { return { id: "x" }; }
