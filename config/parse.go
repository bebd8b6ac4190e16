package config

import (
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// LookupFunc looks up an environment variable; os.LookupEnv in production,
// a map in tests. A nil LookupFunc means no overrides.
type LookupFunc func(name string) (string, bool)

// Parse decodes a config file, fills in the default of every absent key,
// and validates the result. It reads no environment; see [ParseEnv].
func Parse(data []byte) (*Config, error) {
	return ParseEnv(data, nil)
}

// ParseEnv is [Parse] with environment overrides (see [EnvName]) applied
// after decoding and before validation.
func ParseEnv(data []byte, env LookupFunc) (*Config, error) {
	cfg, err := decode(data)
	if err != nil {
		return nil, err
	}
	if err := cfg.applyEnv(env); err != nil {
		return nil, err
	}
	if cfg.Permissions == nil {
		// The whole section is absent: everyone may relay, and users of
		// the bridge's own server may use it.
		cfg.Permissions = map[string]string{"*": PermRelay, cfg.Homeserver.Domain: PermUser}
	}
	cfg.normalize()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// decode parses data over Default() without validating it.
func decode(data []byte) (*Config, error) {
	root, err := parseNode(data)
	if err != nil {
		return nil, err
	}
	cfg := Default()
	cfg.Permissions = nil // filled in by ParseEnv once the domain is known
	if root == nil {
		return cfg, nil
	}
	var d decoder
	d.value(root, reflect.ValueOf(cfg).Elem(), "")
	if err := d.errs.err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// parseNode parses YAML into its node tree and returns the document's
// root, or nil for an empty document.
func parseNode(data []byte) (*yaml.Node, error) {
	doc, err := parseDoc(data)
	if err != nil {
		return nil, err
	}
	return docRoot(doc), nil
}

// decoder walks a YAML node tree alongside the Config struct, so that each
// problem can be reported with the dotted path of its key.
type decoder struct {
	errs errorList
}

var (
	durationType = reflect.TypeFor[Duration]()
	simpleKey    = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
)

// rootKey names the document itself in errors.
const rootKey = "(root)"

// joinKey appends a mapping key to a dotted path. Keys that are not plain
// identifiers are quoted in brackets: permissions["@alice:example.org"].
func joinKey(path, key string) string {
	if !simpleKey.MatchString(key) {
		return path + "[" + strconv.Quote(key) + "]"
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

func joinIndex(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

func displayKey(path string) string {
	if path == "" {
		return rootKey
	}
	return path
}

// resolve follows aliases to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for range 64 {
		if n == nil || n.Kind != yaml.AliasNode {
			return n
		}
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return "a scalar"
	case yaml.AliasNode:
		return "an alias"
	default:
		return "a document"
	}
}

// yamlName returns the YAML key of a struct field, or "" if the field is
// not part of the file.
func yamlName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" {
		return ""
	}
	return name
}

// fieldByKey finds the struct field with the given YAML key.
func fieldByKey(t reflect.Type, key string) (int, bool) {
	for i := range t.NumField() {
		if yamlName(t.Field(i)) == key && key != "" {
			return i, true
		}
	}
	return 0, false
}

// value decodes n into v (a settable value). A null node leaves v as it
// is, so an empty key keeps its default.
func (d *decoder) value(n *yaml.Node, v reflect.Value, path string) {
	n = resolve(n)
	if n == nil || isNull(n) {
		return
	}
	key := displayKey(path)
	switch {
	case v.Type() == durationType:
		var dur Duration
		if err := dur.UnmarshalYAML(n); err != nil {
			d.errs.add(key, err)
			return
		}
		v.Set(reflect.ValueOf(dur))
	case v.Kind() == reflect.Struct:
		d.structValue(n, v, path)
	case v.Kind() == reflect.Map:
		d.mapValue(n, v, path, false)
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String:
		if n.Kind != yaml.SequenceNode {
			d.errs.add(key, fmt.Errorf("%w: expected a list, got %s", ErrInvalidValue, kindName(n)))
			return
		}
		out := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			item = resolve(item)
			if item == nil || isNull(item) {
				continue
			}
			d.value(item, out.Index(i), joinIndex(path, i))
		}
		v.Set(out)
	case v.Kind() == reflect.String, v.Kind() == reflect.Bool, v.Kind() == reflect.Int:
		d.scalar(n, v, key)
	default:
		// Unreachable for Config; a new field of an unsupported type
		// shows up here in tests.
		d.errs.add(key, fmt.Errorf("%w: unsupported field type %s", ErrInvalidValue, v.Type()))
	}
}

var typeNames = map[reflect.Kind]string{
	reflect.String: "a string",
	reflect.Bool:   "true or false",
	reflect.Int:    "a whole number",
}

func (d *decoder) scalar(n *yaml.Node, v reflect.Value, key string) {
	want := typeNames[v.Kind()]
	if n.Kind != yaml.ScalarNode {
		d.errs.add(key, fmt.Errorf("%w: expected %s, got %s", ErrInvalidValue, want, kindName(n)))
		return
	}
	ptr := reflect.New(v.Type())
	if err := n.Decode(ptr.Interface()); err != nil {
		if v.Kind() == reflect.String {
			// Never echo what may be a secret.
			d.errs.add(key, fmt.Errorf("%w: expected %s", ErrInvalidValue, want))
		} else {
			d.errs.add(key, fmt.Errorf("%w: expected %s, got %q", ErrInvalidValue, want, n.Value))
		}
		return
	}
	v.Set(ptr.Elem())
}

// mappingKeys checks that n is a mapping with unique scalar keys and calls
// fn for each pair.
func (d *decoder) mappingKeys(n *yaml.Node, path string, fn func(key string, value *yaml.Node)) {
	if n.Kind != yaml.MappingNode {
		d.errs.add(displayKey(path), fmt.Errorf("%w: expected a mapping, got %s", ErrInvalidValue, kindName(n)))
		return
	}
	seen := make(map[string]bool, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := resolve(n.Content[i])
		if k == nil || k.Kind != yaml.ScalarNode {
			d.errs.add(displayKey(path), fmt.Errorf("%w: a key must be a plain string", ErrInvalidValue))
			continue
		}
		if seen[k.Value] {
			d.errs.add(joinKey(path, k.Value), fmt.Errorf("%w: key appears more than once", ErrInvalidValue))
			continue
		}
		seen[k.Value] = true
		fn(k.Value, n.Content[i+1])
	}
}

func (d *decoder) structValue(n *yaml.Node, v reflect.Value, path string) {
	t := v.Type()
	d.mappingKeys(n, path, func(key string, value *yaml.Node) {
		i, ok := fieldByKey(t, key)
		if !ok {
			err := ErrUnknownKey
			if s := suggest(t, key); s != "" {
				err = fmt.Errorf("%w (did you mean %q?)", ErrUnknownKey, s)
			}
			d.errs.add(joinKey(path, key), err)
			return
		}
		f := t.Field(i)
		if f.Type.Kind() == reflect.Map {
			d.mapValue(value, v.Field(i), joinKey(path, key), f.Tag.Get("config") == "merge")
			return
		}
		d.value(value, v.Field(i), joinKey(path, key))
	})
}

// mapValue decodes a mapping into a map field. Unless merge is set, the
// file's map replaces the default one entirely.
func (d *decoder) mapValue(n *yaml.Node, v reflect.Value, path string, merge bool) {
	n = resolve(n)
	if n == nil || isNull(n) {
		return
	}
	t := v.Type()
	out := reflect.MakeMap(t)
	if merge && !v.IsNil() {
		iter := v.MapRange()
		for iter.Next() {
			out.SetMapIndex(iter.Key(), iter.Value())
		}
	}
	d.mappingKeys(n, path, func(key string, value *yaml.Node) {
		elem := reflect.New(t.Elem()).Elem()
		if old := out.MapIndex(reflect.ValueOf(key)); old.IsValid() {
			elem.Set(old)
		}
		d.value(value, elem, joinKey(path, key))
		out.SetMapIndex(reflect.ValueOf(key), elem)
	})
	v.Set(out)
}

// suggest returns the known key of t closest to an unknown one, if it is
// close enough to be a likely typo.
func suggest(t reflect.Type, key string) string {
	best, bestDist := "", 3
	for i := range t.NumField() {
		name := yamlName(t.Field(i))
		if name == "" {
			continue
		}
		if dist := editDistance(strings.ToLower(key), name); dist < bestDist {
			best, bestDist = name, dist
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, capped for
// long inputs so that hostile files cannot make it expensive.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// leaf is one scalar key of the config, with a pointer to its field.
type leaf struct {
	path string
	v    reflect.Value
}

// leaves lists every key that the environment can override: strings,
// booleans, integers, durations and string lists, in file order. Maps are
// not included.
func (c *Config) leaves() []leaf {
	var out []leaf
	var walk func(v reflect.Value, path string)
	walk = func(v reflect.Value, path string) {
		t := v.Type()
		for i := range t.NumField() {
			name := yamlName(t.Field(i))
			if name == "" {
				continue
			}
			fv := v.Field(i)
			p := joinKey(path, name)
			switch {
			case fv.Type() == durationType:
				out = append(out, leaf{p, fv})
			case fv.Kind() == reflect.Struct:
				walk(fv, p)
			case fv.Kind() == reflect.Map:
			default:
				out = append(out, leaf{p, fv})
			}
		}
	}
	walk(reflect.ValueOf(c).Elem(), "")
	return out
}
