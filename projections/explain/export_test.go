package explain

// SelectStatement is selectStatement, for the plan tests.
var SelectStatement = selectStatement
