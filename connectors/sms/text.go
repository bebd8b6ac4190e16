package sms

import (
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxBodyLength is Twilio's limit on one message body, in UTF-16 code units.
const MaxBodyLength = 1600

// Encoding is how an SMS body is carried.
type Encoding string

// Encodings.
const (
	GSM7 Encoding = "gsm7"
	UCS2 Encoding = "ucs2"
)

// gsmBasic is the GSM 03.38 default alphabet (without the escape code);
// gsmExtended are the characters of its extension table, which take two
// septets each.
const (
	gsmBasic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
		"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
	gsmExtended = "\f^{}\\[~]|€"
)

var gsmBasicSet, gsmExtSet = runeSet(gsmBasic), runeSet(gsmExtended)

// asciiSeptets is the GSM-7 size of each ASCII character (0: not in the
// alphabet), so the common ASCII body needs no map look-up.
var asciiSeptets = func() (t [utf8.RuneSelf]uint8) {
	for r := range rune(utf8.RuneSelf) {
		switch {
		case gsmBasicSet[r]:
			t[r] = 1
		case gsmExtSet[r]:
			t[r] = 2
		}
	}
	return t
}()

func runeSet(s string) map[rune]bool {
	m := make(map[rune]bool, len(s))
	for _, r := range s {
		m[r] = true
	}
	return m
}

// gsmSeptets is the GSM-7 size of r: 1 in the default alphabet, 2 in the
// extension table, 0 when GSM-7 cannot carry it.
func gsmSeptets(r rune) int {
	switch {
	case r < utf8.RuneSelf:
		return int(asciiSeptets[r])
	case gsmBasicSet[r]:
		return 1
	case gsmExtSet[r]:
		return 2
	}
	return 0
}

// Segments returns how a body is encoded and how many SMS segments it
// costs: GSM-7 holds 160 septets in one segment or 153 per segment of a
// concatenated message (extension characters take two, and are not split
// across segments); UCS-2 holds 70 UTF-16 code units, or 67 per segment
// (surrogate pairs are not split). An empty body costs one segment. It
// allocates nothing.
func Segments(body string) (Encoding, int) {
	total := 0
	for _, r := range body {
		n := gsmSeptets(r)
		if n == 0 {
			return UCS2, countSegments(body, ucs2Units, 70, 67)
		}
		total += n
	}
	if total <= 160 {
		return GSM7, 1
	}
	return GSM7, countSegments(body, gsmSeptets, 160, 153)
}

// ucs2Units is the UTF-16 size of r.
func ucs2Units(r rune) int { return utf16.RuneLen(r) }

// countSegments packs body's characters, of indivisible sizes given by
// size, into segments.
func countSegments(body string, size func(rune) int, single, multi int) int {
	total := 0
	for _, r := range body {
		total += size(r)
	}
	if total <= single {
		return 1
	}
	n, used := 1, 0
	for _, r := range body {
		s := size(r)
		if used+s > multi {
			n++
			used = 0
		}
		used += s
	}
	return n
}

// SplitBody splits a body into parts of at most limit UTF-16 code units
// (Twilio counts characters that way), breaking at the last whitespace
// before the limit when there is one in the second half of the part, and
// between characters otherwise. The whitespace at a break is dropped; no
// other character is lost or reordered. An empty body gives one empty part.
func SplitBody(body string, limit int) []string {
	if limit < 2 {
		limit = 2
	}
	var parts []string
	for utf16Len(body) > limit {
		cut, units := 0, 0 // byte offset of the hard cut
		lastSpace, spaceEnd := -1, -1
		for i, r := range body {
			n := utf16.RuneLen(r)
			if n < 0 {
				n = 1
			}
			if units+n > limit {
				break
			}
			units += n
			cut = i + len(string(r))
			if unicode.IsSpace(r) && units > limit/2 {
				lastSpace, spaceEnd = i, cut
			}
		}
		if cut == 0 { // cannot happen with limit >= 2; guard against a loop
			cut = len(string([]rune(body)[0]))
		}
		if lastSpace > 0 {
			part := strings.TrimRightFunc(body[:lastSpace], unicode.IsSpace)
			if part != "" {
				parts = append(parts, part)
				body = strings.TrimLeftFunc(body[spaceEnd:], unicode.IsSpace)
				continue
			}
		}
		parts = append(parts, body[:cut])
		body = body[cut:]
	}
	if body != "" || len(parts) == 0 {
		parts = append(parts, body)
	}
	return parts
}

func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		if l := utf16.RuneLen(r); l > 0 {
			n += l
		} else {
			n++
		}
	}
	return n
}
