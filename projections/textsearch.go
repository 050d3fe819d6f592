package projections

import (
	"strings"
	"unicode/utf8"
)

// SearchTableSuffix names the companion table of a searched table, on the dialects that keep
// one (see Dialect.TextSearch).
const SearchTableSuffix = "_search"

// trigram is the length, in characters, of the pieces a trigram index is made of: a shorter
// text has none and is matched by a scan.
const trigram = 3

// likeSubstring is a LIKE pattern (escape character \) matching text anywhere.
func likeSubstring(text string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(text) + "%"
}

// shortForTrigrams tells text too short for a trigram index.
func shortForTrigrams(text string) bool { return utf8.RuneCountInString(text) < trigram }

// TextSearch on SQLite: a contentless FTS5 table with the trigram tokenizer (case kept: the
// read model normalises the column), its rowids those of the table, kept by triggers. A
// contentless table holds the index only, not a second copy of the text.
func (sqlite) TextSearch(table, column string) []string {
	fts := table + SearchTableSuffix
	return []string{
		`CREATE VIRTUAL TABLE IF NOT EXISTS ` + fts + ` USING fts5(` + column +
			`, tokenize = 'trigram case_sensitive 1', content = '', contentless_delete = 1)`,
		`CREATE TRIGGER IF NOT EXISTS ` + fts + `_insert AFTER INSERT ON ` + table + ` BEGIN
			INSERT INTO ` + fts + ` (rowid, ` + column + `) VALUES (new.rowid, new.` + column + `); END`,
		`CREATE TRIGGER IF NOT EXISTS ` + fts + `_update AFTER UPDATE OF ` + column + ` ON ` + table + `
			WHEN old.` + column + ` IS NOT new.` + column + ` BEGIN
			DELETE FROM ` + fts + ` WHERE rowid = old.rowid;
			INSERT INTO ` + fts + ` (rowid, ` + column + `) VALUES (new.rowid, new.` + column + `); END`,
		`CREATE TRIGGER IF NOT EXISTS ` + fts + `_delete AFTER DELETE ON ` + table + ` BEGIN
			DELETE FROM ` + fts + ` WHERE rowid = old.rowid; END`,
	}
}

// TextMatch on SQLite: a trigram phrase (the text quoted, so FTS5 reads no operators in it)
// finds every row holding the text; a shorter text is looked for in every row.
func (sqlite) TextMatch(table, alias, column, text string) (string, any) {
	if shortForTrigrams(text) {
		// instr compares bytes: on normalised text the same as LIKE, several times faster
		// on text that is not ASCII, and with no wildcard to escape.
		return `instr(` + alias + `.` + column + `, ?) > 0`, text
	}
	fts := table + SearchTableSuffix
	phrase := `"` + strings.ReplaceAll(text, `"`, `""`) + `"`
	return alias + `.rowid IN (SELECT rowid FROM ` + fts + ` WHERE ` + fts + ` MATCH ?)`, phrase
}

// TextSearch on PostgreSQL: pg_trgm, created once per database in schema public (an
// extension belongs to one schema, and the read models' search_path is their own schema),
// and a GIN index of the column's trigrams. Two sessions creating the extension at once
// race on its name: the loser finds it made.
func (postgres) TextSearch(table, column string) []string {
	return []string{
		`DO $$ BEGIN CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;
			EXCEPTION WHEN unique_violation OR duplicate_object THEN NULL; END $$`,
		`CREATE INDEX IF NOT EXISTS ` + table + `_trgm ON ` + table + ` USING gin (` + column + ` public.gin_trgm_ops)`,
	}
}

// TextMatch on PostgreSQL: LIKE, which the trigram index answers for three characters and
// more. A shorter text has no trigram, and a LIKE the planner sent to the index would read
// all of it: strpos, which no index serves, scans the rows instead.
func (postgres) TextMatch(_, alias, column, text string) (string, any) {
	if shortForTrigrams(text) {
		return `strpos(` + alias + `.` + column + `, ?) > 0`, text
	}
	return alias + `.` + column + ` LIKE ? ESCAPE '\'`, likeSubstring(text)
}
