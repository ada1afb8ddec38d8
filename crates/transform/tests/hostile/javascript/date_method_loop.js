// expect: failed row
// says: time limit of
function transform(p) {
  Date.prototype.toISOString = function () { while (true) {} };
  return { id: "x", dt: new Date() };
}
