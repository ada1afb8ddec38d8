// expect: failed row
// says: time limit of | 64-bit
function transform(p) {
  BigInt.prototype.toString = function () { while (true) {} };
  return { id: "x", i: 10n ** 30n };
}
