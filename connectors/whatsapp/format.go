package whatsapp

import (
	"context"
	"html"
	"strings"
	"unicode"
	"unicode/utf8"

	"maunium.net/go/mautrix/format"
)

// WhatsApp formatting: *bold*, _italic_, ~strike~, ```monospace``` (also
// over several lines) and `inline code`. A marker opens at the start of
// the text or after a space or punctuation and must be followed by a
// non-space; it closes before the end, a space or punctuation and must be
// preceded by a non-space. Formatting does not span lines, except
// monospace blocks.

var inlineTags = map[byte]string{'*': "strong", '_': "em", '~': "del", '`': "code"}

// FormatToHTML converts WhatsApp-formatted text to the HTML subset Matrix
// uses (org.matrix.custom.html). formatted is false when the text has no
// formatting, and html is then "".
func FormatToHTML(text string) (out string, formatted bool) {
	var b strings.Builder
	rest := text
	for rest != "" {
		start := strings.Index(rest, "```")
		if start < 0 {
			formatted = formatInline(&b, rest) || formatted
			break
		}
		end := strings.Index(rest[start+3:], "```")
		if end < 0 || !boundaryBefore(rest, start) || strings.TrimSpace(rest[start+3:start+3+end]) == "" {
			// Not a block: the backticks are text.
			formatted = formatInline(&b, rest[:start+3]) || formatted
			rest = rest[start+3:]
			continue
		}
		formatted = formatInline(&b, rest[:start]) || formatted
		code := rest[start+3 : start+3+end]
		if strings.Contains(code, "\n") {
			b.WriteString("<pre><code>")
			b.WriteString(html.EscapeString(strings.Trim(code, "\n")))
			b.WriteString("</code></pre>")
		} else {
			b.WriteString("<code>")
			b.WriteString(html.EscapeString(code))
			b.WriteString("</code>")
		}
		formatted = true
		rest = rest[start+3+end+3:]
	}
	if !formatted {
		return "", false
	}
	return b.String(), true
}

// formatInline writes s (no code blocks) as HTML and reports whether it
// held formatting.
func formatInline(b *strings.Builder, s string) bool {
	formatted := false
	lines := strings.Split(s, "\n")
	for i, line := range lines {
		if i > 0 {
			b.WriteString("<br>")
		}
		formatted = formatLine(b, line, 0) || formatted
	}
	return formatted
}

// maxNesting bounds recursion on adversarial input.
const maxNesting = 8

func formatLine(b *strings.Builder, s string, depth int) bool {
	formatted := false
	plainFrom := 0
	for i := 0; i < len(s); i++ {
		tag, ok := inlineTags[s[i]]
		if !ok || depth >= maxNesting || !opens(s, i) {
			continue
		}
		if s[i] == '`' && strings.HasPrefix(s[i:], "``") {
			// A run of backticks (an unclosed block) is text.
			for i+1 < len(s) && s[i+1] == '`' {
				i++
			}
			continue
		}
		end := closing(s, i)
		if end < 0 {
			continue
		}
		b.WriteString(html.EscapeString(s[plainFrom:i]))
		b.WriteString("<" + tag + ">")
		inner := s[i+1 : end]
		if s[i] == '`' {
			b.WriteString(html.EscapeString(inner))
		} else {
			formatLine(b, inner, depth+1)
		}
		b.WriteString("</" + tag + ">")
		formatted = true
		i = end
		plainFrom = end + 1
	}
	b.WriteString(html.EscapeString(s[plainFrom:]))
	return formatted
}

// boundaryBefore reports whether position i is at the start or after a
// space or punctuation.
func boundaryBefore(s string, i int) bool {
	if i == 0 {
		return true
	}
	r, _ := utf8.DecodeLastRuneInString(s[:i])
	return unicode.IsSpace(r) || unicode.IsPunct(r) || unicode.IsSymbol(r)
}

// opens reports whether the inline marker at i may open: at a boundary
// and followed by a non-space.
func opens(s string, i int) bool {
	if !boundaryBefore(s, i) || i+1 >= len(s) {
		return false
	}
	r, _ := utf8.DecodeRuneInString(s[i+1:])
	return !unicode.IsSpace(r)
}

// closing finds the marker closing the one at i, or -1.
func closing(s string, i int) int {
	m := s[i]
	for j := i + 2; j < len(s); j++ {
		if s[j] != m {
			continue
		}
		prev, _ := utf8.DecodeLastRuneInString(s[:j])
		if unicode.IsSpace(prev) {
			continue
		}
		if j+1 < len(s) {
			next, _ := utf8.DecodeRuneInString(s[j+1:])
			if !unicode.IsSpace(next) && !unicode.IsPunct(next) && !unicode.IsSymbol(next) {
				continue
			}
		}
		return j
	}
	return -1
}

// htmlParser turns Matrix HTML into WhatsApp-formatted text.
var htmlParser = &format.HTMLParser{
	TabsToSpaces:           4,
	Newline:                "\n",
	HorizontalLine:         "\n---\n",
	BoldConverter:          func(s string, _ format.Context) string { return wrapMarker(s, "*") },
	ItalicConverter:        func(s string, _ format.Context) string { return wrapMarker(s, "_") },
	StrikethroughConverter: func(s string, _ format.Context) string { return wrapMarker(s, "~") },
	MonospaceConverter:     func(s string, _ format.Context) string { return wrapMarker(s, "```") },
	MonospaceBlockConverter: func(code, _ string, _ format.Context) string {
		return "```\n" + strings.TrimSuffix(code, "\n") + "\n```"
	},
	LinkConverter: func(text, href string, _ format.Context) string {
		if text == href || strings.TrimPrefix(href, "mailto:") == text || href == "" {
			return text
		}
		return text + " (" + href + ")"
	},
	PillConverter: func(displayname, mxid, _ string, _ format.Context) string {
		if displayname != "" {
			return displayname
		}
		return mxid
	},
}

// wrapMarker puts markers around s, keeping surrounding spaces outside
// (WhatsApp does not format "* bold *").
func wrapMarker(s, marker string) string {
	trimmed := strings.TrimSpace(s)
	if trimmed == "" {
		return s
	}
	lead := s[:strings.Index(s, trimmed)]
	trail := s[len(lead)+len(trimmed):]
	return lead + marker + trimmed + marker + trail
}

// HTMLToFormat converts Matrix HTML to WhatsApp-formatted text.
func HTMLToFormat(htmlText string) string {
	return htmlParser.Parse(htmlText, format.NewContext(context.Background()))
}
