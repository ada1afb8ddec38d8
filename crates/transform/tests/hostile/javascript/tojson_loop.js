// expect: failed row
// says: time limit of | cannot be written
function transform(p) {
  return { id: "x", j: { toJSON() { while (true) {} } } };
}
