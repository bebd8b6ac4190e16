package phone

import (
	"strings"
	"unicode"
)

// minRunDigits is how many digits in a row (separators allowed) make a
// string look like it carries a phone number.
const minRunDigits = 7

// Contains reports whether s holds something that may be a phone number:
// a run of at least seven digits (any script), where spaces, dashes, dots,
// slashes, parentheses (ASCII or fullwidth) and invisible format characters
// between the digits do not break the run — what Normalize reads past.
func Contains(s string) bool {
	return len(runs(s)) > 0
}

// runs returns the [start, end) byte ranges of phone-like runs in s.
func runs(s string) [][2]int {
	var found [][2]int
	start, last, digits := -1, -1, 0
	flush := func() {
		if digits >= minRunDigits {
			found = append(found, [2]int{start, last})
		}
		start, last, digits = -1, -1, 0
	}
	for i, r := range s {
		switch {
		case unicode.IsDigit(r):
			if start < 0 {
				start = i
			}
			digits++
			last = i + len(string(r))
		case start >= 0 && separator(r):
		case (r == '+' || r == '＋') && start < 0:
		default:
			flush()
		}
	}
	flush()
	return found
}

// Redact replaces every phone-like run in s (see [Contains]) with
// "[number]", for text that is shown to users or logged.
func Redact(s string) string {
	found := runs(s)
	if len(found) == 0 {
		return s
	}
	var b strings.Builder
	prev := 0
	for _, r := range found {
		start := r[0]
		if strings.HasSuffix(s[:start], "+") {
			start--
		} else if strings.HasSuffix(s[:start], "＋") {
			start -= len("＋")
		}
		b.WriteString(s[prev:start])
		b.WriteString("[number]")
		prev = r[1]
	}
	b.WriteString(s[prev:])
	return b.String()
}

// separator reports whether r may stand between the digits of one number.
func separator(r rune) bool {
	return strings.ContainsRune(" -./()\u00a0－．／（）\u2010\u2011\u2012\u2013\u2014\u2015\u2212", r) ||
		unicode.IsSpace(r) || unicode.Is(unicode.Cf, r)
}
