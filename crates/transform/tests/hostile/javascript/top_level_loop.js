// expect: refused
// says: top-level code ran longer than
while (true) {}
function transform(p) { return { id: "x" }; }
