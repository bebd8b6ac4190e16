package config

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"reflect"
	"strings"

	"github.com/switchboard-bridge/switchboard"
	"gopkg.in/yaml.v3"
)

// generatedSecret is a secret key that "generate" may stand for.
type generatedSecret struct {
	path []string
	gen  func() string
}

// generatedSecrets are the keys whose "generate" placeholder is replaced
// with a random value on first run.
var generatedSecrets = []generatedSecret{
	{[]string{"appservice", "as_token"}, func() string { return randomAlnum(64) }},
	{[]string{"appservice", "hs_token"}, func() string { return randomAlnum(64) }},
	{[]string{"encryption", "pickle_key"}, randomKey},
	{[]string{"identity", "secret"}, randomKey},
	{[]string{"provisioning", "shared_secret"}, func() string { return randomAlnum(64) }},
}

const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// randomAlnum returns n random letters and digits from crypto/rand.
func randomAlnum(n int) string {
	out := make([]byte, 0, n)
	buf := make([]byte, 2*n)
	for len(out) < n {
		rand.Read(buf) // never fails (Go 1.24+)
		for _, b := range buf {
			// 248 = 4*62: reject the tail to keep the choice uniform.
			if b < 248 && len(out) < n {
				out = append(out, alnum[b%62])
			}
		}
	}
	return string(out)
}

// randomKey returns 32 random bytes, base64url-encoded without padding.
func randomKey() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// GenerateSecrets replaces the "generate" placeholder in as_token,
// hs_token, encryption.pickle_key and identity.secret with fresh random
// values, except where env sets the key's override (see [EnvName]): a
// secret given through the environment is never written to the file. It
// returns the rewritten file, with comments and key order kept, and the
// dotted keys it replaced. If nothing was replaced, data is returned as
// it was.
func GenerateSecrets(data []byte, env LookupFunc) ([]byte, []string, error) {
	doc, err := parseDoc(data)
	if err != nil {
		return nil, nil, err
	}
	var generated []string
	if root := docRoot(doc); root != nil {
		for _, s := range generatedSecrets {
			key := strings.Join(s.path, ".")
			if env != nil {
				if _, set := env(EnvName(key)); set {
					continue
				}
			}
			n := lookup(root, s.path...)
			if n == nil || n.Kind != yaml.ScalarNode || n.Value != PlaceholderGenerate {
				continue
			}
			n.Value, n.Tag, n.Style = s.gen(), "!!str", 0
			generated = append(generated, key)
		}
	}
	if len(generated) == 0 {
		return data, nil, nil
	}
	out, err := encodeDoc(doc)
	if err != nil {
		return nil, nil, err
	}
	return out, generated, nil
}

// Upgrade adds to an older config file every key that the example config
// has and the file lacks, with the example's value and comments, placed
// after the key that precedes it in the example. The admin's values,
// comments and key order are kept. retention.networks gets any network it
// lacks; permissions, whose keys are the admin's choice, is left alone. It returns the
// rewritten file and the dotted keys added; if none were, data is
// returned as it was.
func Upgrade(data []byte) ([]byte, []string, error) {
	doc, err := parseDoc(data)
	if err != nil {
		return nil, nil, err
	}
	example, err := parseDoc(switchboard.ExampleConfig)
	if err != nil {
		return nil, nil, fmt.Errorf("config: example config: %w", err)
	}
	var added []string
	if root := docRoot(doc); root == nil && len(doc.Content) == 0 {
		// An empty file: the upgrade is the whole example.
		*doc = *example
		added = append(added, topLevelKeys(docRoot(example))...)
	} else if root != nil && root.Kind == yaml.MappingNode {
		addMissing(root, docRoot(example), reflect.TypeFor[Config](), "", &added)
	}
	if len(added) == 0 {
		return data, nil, nil
	}
	out, err := encodeDoc(doc)
	if err != nil {
		return nil, nil, err
	}
	return out, added, nil
}

// addMissing copies keys of the example mapping that user lacks into
// user. t is the Go type of the mapping: a struct (a section), whose
// subsections present in both are upgraded too, or a map with a fixed set
// of keys (tagged config:"merge", like retention.networks).
func addMissing(user, example *yaml.Node, t reflect.Type, path string, added *[]string) {
	for i := 0; i+1 < len(example.Content); i += 2 {
		key := example.Content[i].Value
		if ui := keyIndex(user, key); ui >= 0 {
			if t.Kind() != reflect.Struct {
				continue
			}
			field, known := fieldByKey(t, key)
			uv, ev := user.Content[ui+1], example.Content[i+1]
			if !known || uv.Kind != yaml.MappingNode || ev.Kind != yaml.MappingNode {
				continue
			}
			f := t.Field(field)
			switch {
			case f.Type.Kind() == reflect.Struct && f.Type != durationType,
				f.Type.Kind() == reflect.Map && f.Tag.Get("config") == "merge":
				addMissing(uv, ev, f.Type, joinKey(path, key), added)
			}
			continue
		}
		// Place it after the nearest preceding example key the user has.
		pos := 0
		for j := i - 2; j >= 0; j -= 2 {
			if ui := keyIndex(user, example.Content[j].Value); ui >= 0 {
				pos = ui + 2
				break
			}
		}
		pair := []*yaml.Node{copyNode(example.Content[i]), copyNode(example.Content[i+1])}
		user.Content = append(user.Content[:pos], append(pair, user.Content[pos:]...)...)
		*added = append(*added, joinKey(path, key))
	}
}

// keyIndex returns the index of key's key node in mapping m, or -1.
func keyIndex(m *yaml.Node, key string) int {
	if m == nil || m.Kind != yaml.MappingNode {
		return -1
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := m.Content[i]; k.Kind == yaml.ScalarNode && k.Value == key {
			return i
		}
	}
	return -1
}

// lookup follows a path of mapping keys from root and returns the value
// node, or nil.
func lookup(root *yaml.Node, path ...string) *yaml.Node {
	n := root
	for _, key := range path {
		i := keyIndex(n, key)
		if i < 0 {
			return nil
		}
		n = n.Content[i+1]
	}
	return n
}

func topLevelKeys(m *yaml.Node) []string {
	var keys []string
	for i := 0; m != nil && i+1 < len(m.Content); i += 2 {
		keys = append(keys, m.Content[i].Value)
	}
	return keys
}

// copyNode deep-copies a node tree, dropping positions from the source.
func copyNode(n *yaml.Node) *yaml.Node {
	if n == nil {
		return nil
	}
	c := *n
	c.Line, c.Column = 0, 0
	c.Content = make([]*yaml.Node, len(n.Content))
	for i, child := range n.Content {
		c.Content[i] = copyNode(child)
	}
	return &c
}

// parseDoc parses data into a document node, or an empty document.
func parseDoc(data []byte) (doc *yaml.Node, err error) {
	defer func() {
		if r := recover(); r != nil {
			doc, err = nil, fmt.Errorf("config: %w: %v", ErrSyntax, r)
		}
	}()
	doc = &yaml.Node{}
	if err := yaml.Unmarshal(data, doc); err != nil {
		return nil, fmt.Errorf("config: %w: %w", ErrSyntax, err)
	}
	return doc, nil
}

func docRoot(doc *yaml.Node) *yaml.Node {
	if doc == nil || doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil
	}
	return doc.Content[0]
}

// encodeDoc writes a node tree back as YAML with two-space indentation,
// then puts back the blank line before each top-level section that
// yaml.v3 drops, unless that would change what the file says.
func encodeDoc(doc *yaml.Node) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("config: encode: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("config: encode: %w", err)
	}
	out := buf.Bytes()
	spaced := spaceSections(out)
	var a, b any
	if yaml.Unmarshal(out, &a) == nil && yaml.Unmarshal(spaced, &b) == nil && reflect.DeepEqual(a, b) {
		return spaced, nil
	}
	return out, nil
}

// spaceSections inserts an empty line before every unindented line that
// follows an indented one, separating top-level sections.
func spaceSections(in []byte) []byte {
	lines := strings.SplitAfter(string(in), "\n")
	var out strings.Builder
	out.Grow(len(in) + 64)
	prevIndented := false
	for _, line := range lines {
		trimmed := strings.TrimRight(line, "\r\n")
		if trimmed == "" {
			prevIndented = false
			out.WriteString(line)
			continue
		}
		indented := line[0] == ' ' || line[0] == '\t'
		if !indented && prevIndented && trimmed != "---" && trimmed != "..." {
			out.WriteString("\n")
		}
		prevIndented = indented
		out.WriteString(line)
	}
	return []byte(out.String())
}
