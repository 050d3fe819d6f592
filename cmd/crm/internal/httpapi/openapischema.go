package httpapi

import (
	"encoding"
	"encoding/json"
	"reflect"
	"strings"
	"time"
	"unicode"
)

// schemas derives JSON Schemas (2020-12, as OpenAPI 3.1 uses them) from Go types, following
// encoding/json's rules (field names and omitempty from the tags, embedded structs flattened),
// so that an answer's description is its Go type and cannot drift from it. Named structs
// become components referenced by $ref.
//
// Answers are described strictly: no property the type lacks, every field without omitempty
// required, nil slices, maps and pointers allowed as null. Request bodies (inputs) require
// nothing: what is missing the domain refuses with a problem naming the field.
type schemas struct {
	defs  map[string]any
	names map[schemaKey]string
}

type schemaKey struct {
	t     reflect.Type
	input bool
}

func newSchemas() *schemas {
	return &schemas{defs: map[string]any{}, names: map[schemaKey]string{}}
}

var (
	timeType      = reflect.TypeFor[time.Time]()
	rawType       = reflect.TypeFor[json.RawMessage]()
	marshalerType = reflect.TypeFor[json.Marshaler]()
	textType      = reflect.TypeFor[encoding.TextMarshaler]()
)

// of is the schema of values of t.
func (s *schemas) of(t reflect.Type, input bool) map[string]any {
	switch {
	case t == timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case t == rawType:
		return map[string]any{"description": "any JSON value"}
	case t.Implements(marshalerType) || reflect.PointerTo(t).Implements(marshalerType):
		return map[string]any{"description": "any JSON value (encoded by " + t.String() + ")"}
	case t.Implements(textType) || reflect.PointerTo(t).Implements(textType):
		return map[string]any{"type": "string"}
	}
	switch t.Kind() {
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Pointer:
		return nullable(s.of(t.Elem(), input))
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": []any{"string", "null"}, "contentEncoding": "base64"}
		}
		return map[string]any{"type": []any{"array", "null"}, "items": s.of(t.Elem(), input)}
	case reflect.Array:
		return map[string]any{"type": "array", "items": s.of(t.Elem(), input)}
	case reflect.Map:
		return map[string]any{"type": []any{"object", "null"}, "additionalProperties": s.of(t.Elem(), input)}
	case reflect.Struct:
		if t.Name() == "" {
			return s.object(t, input)
		}
		return map[string]any{"$ref": "#/components/schemas/" + s.component(t, input)}
	}
	return map[string]any{} // interfaces: any JSON value
}

// nullable is schema, or null.
func nullable(schema map[string]any) map[string]any {
	switch typ := schema["type"].(type) {
	case string:
		out := map[string]any{}
		for k, v := range schema {
			out[k] = v
		}
		out["type"] = []any{typ, "null"}
		return out
	case []any:
		return schema // already says null
	}
	if len(schema) == 0 || (len(schema) == 1 && schema["description"] != nil) {
		return schema // any JSON value, null included
	}
	return map[string]any{"anyOf": []any{schema, map[string]any{"type": "null"}}}
}

// component names the component of struct t, describing it on first use.
func (s *schemas) component(t reflect.Type, input bool) string {
	key := schemaKey{t, input}
	if name, ok := s.names[key]; ok {
		return name
	}
	name := componentName(t)
	if input {
		name += "Input"
	}
	for i := 2; s.defs[name] != nil; i++ {
		name = componentName(t) + strings.Repeat("_", i-1)
	}
	s.names[key] = name
	s.defs[name] = map[string]any{} // taken: recursive types refer to it
	s.defs[name] = s.object(t, input)
	return name
}

// componentName is the package and type name in one identifier, such as BoardAnswer; the
// packages whose types are the API's own vocabulary (commands, httpapi, runtime) add nothing.
func componentName(t reflect.Type) string {
	pkg := t.PkgPath()
	pkg = pkg[strings.LastIndex(pkg, "/")+1:]
	name := strings.Map(func(r rune) rune {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			return r
		}
		return -1
	}, t.Name())
	switch pkg {
	case "commands", "httpapi", "runtime", "":
		return name
	}
	if strings.HasPrefix(strings.ToLower(name), pkg) {
		return name
	}
	return strings.ToUpper(pkg[:1]) + pkg[1:] + name
}

// object is the schema of struct t as encoding/json writes it.
func (s *schemas) object(t reflect.Type, input bool) map[string]any {
	props := map[string]any{}
	var required []string
	s.fields(t, input, props, &required)
	o := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		o["required"] = required
	}
	return o
}

func (s *schemas) fields(t reflect.Type, input bool, props map[string]any, required *[]string) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				s.fields(ft, input, props, required)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		schema := s.of(f.Type, input)
		if strings.Contains(","+opts+",", ",string,") {
			schema = map[string]any{"type": "string"}
		}
		if doc := f.Tag.Get("doc"); doc != "" {
			schema = withDescription(schema, doc)
		}
		props[name] = schema
		if !input && !strings.Contains(","+opts+",", ",omitempty,") && !strings.Contains(","+opts+",", ",omitzero,") {
			*required = append(*required, name)
		}
	}
}

// withDescription is schema with a description; a $ref is wrapped, since 3.1 allows
// siblings of $ref but not every tool reads them.
func withDescription(schema map[string]any, doc string) map[string]any {
	if _, ok := schema["$ref"]; ok {
		return map[string]any{"allOf": []any{schema}, "description": doc}
	}
	out := map[string]any{"description": doc}
	for k, v := range schema {
		out[k] = v
	}
	return out
}
