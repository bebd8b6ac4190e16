package sms

import (
	"strings"
	"unicode"
	"unicode/utf16"
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

func runeSet(s string) map[rune]bool {
	m := make(map[rune]bool, len(s))
	for _, r := range s {
		m[r] = true
	}
	return m
}

// Segments returns how a body is encoded and how many SMS segments it
// costs: GSM-7 holds 160 septets in one segment or 153 per segment of a
// concatenated message (extension characters take two, and are not split
// across segments); UCS-2 holds 70 UTF-16 code units, or 67 per segment
// (surrogate pairs are not split). An empty body costs one segment.
func Segments(body string) (Encoding, int) {
	septets := make([]int, 0, len(body))
	gsm := true
	for _, r := range body {
		switch {
		case gsmBasicSet[r]:
			septets = append(septets, 1)
		case gsmExtSet[r]:
			septets = append(septets, 2)
		default:
			gsm = false
		}
		if !gsm {
			break
		}
	}
	if gsm {
		return GSM7, countSegments(septets, 160, 153)
	}
	units := make([]int, 0, len(body))
	for _, r := range body {
		units = append(units, utf16.RuneLen(r))
	}
	return UCS2, countSegments(units, 70, 67)
}

// countSegments packs indivisible character sizes into segments.
func countSegments(sizes []int, single, multi int) int {
	total := 0
	for _, s := range sizes {
		total += s
	}
	if total <= single {
		return 1
	}
	n, used := 1, 0
	for _, s := range sizes {
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
