// expect: refused
// says: `columns` must be an array of column names
var columns = [];
columns.length = 2 ** 32 - 1;
function transform(p) { return { id: "x" }; }
