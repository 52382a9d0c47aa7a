package rm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// This file holds the JSON shapes that Jersey's "natural" JAXB notation
// produces and that encoding/json does not handle by itself:
//
//   - a list with one element may be written as the element itself;
//   - maps are {"entry":[{"key":K,"value":V},...]}, and some DAOs repeat the
//     member "entry" inside one object instead of writing an array;
//   - the root-unwrapped attempt DAO writes numbers as strings.

// list decodes a JSON array, a single object standing for a one-element
// array, or null/absent as an empty list.
type list[T any] []T

func (l *list[T]) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || bytes.Equal(b, []byte("null")) {
		*l = nil
		return nil
	}
	if b[0] == '[' {
		var items []T
		if err := json.Unmarshal(b, &items); err != nil {
			return err
		}
		*l = items
		return nil
	}
	var one T
	if err := json.Unmarshal(b, &one); err != nil {
		return err
	}
	*l = []T{one}
	return nil
}

// Int64 is an integer that Jersey may write as a JSON number or as a string
// (the root-unwrapped appattempt DAO does the latter). It marshals as a number.
type Int64 int64

func (n *Int64) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || bytes.Equal(b, []byte("null")) {
		*n = 0
		return nil
	}
	s := string(b)
	if b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		s = strings.TrimSpace(s)
		if s == "" || s == "null" {
			*n = 0
			return nil
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		// Jersey writes floats for some counters; accept an integral float.
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || f != float64(int64(f)) {
			return fmt.Errorf("rm: %q is not an integer", s)
		}
		v = int64(f)
	}
	*n = Int64(v)
	return nil
}

// entry is one {"key":K,"value":V} pair of a Jersey map.
type entry[V any] struct {
	Key   string `json:"key"`
	Value V      `json:"value"`
}

// decodeEntryMap reads a Jersey map object: {"entry":[...]}, {"entry":{...}},
// {"entry":{...},"entry":{...}} (the key repeated, as resourceSecondsMap is
// written), {} or null. Later duplicates of a key win.
func decodeEntryMap[V any](b []byte) (map[string]V, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || bytes.Equal(b, []byte("null")) {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("rm: map must be a JSON object, got %v", tok)
	}
	out := map[string]V{}
	for dec.More() {
		keyTok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name, _ := keyTok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		if name != "entry" {
			continue // unknown member: ignore, like Jersey does
		}
		var entries list[entry[V]]
		if err := json.Unmarshal(raw, &entries); err != nil {
			return nil, fmt.Errorf("rm: map entry: %w", err)
		}
		for _, e := range entries {
			out[e.Key] = e.Value
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	return out, nil
}

// encodeEntryMap writes m as {"entry":[{"key":K,"value":V},...]} with the keys
// sorted, so the request body is deterministic.
func encodeEntryMap[V any](m map[string]V) ([]byte, error) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	entries := make([]entry[V], 0, len(keys))
	for _, k := range keys {
		entries = append(entries, entry[V]{Key: k, Value: m[k]})
	}
	return json.Marshal(struct {
		Entry []entry[V] `json:"entry"`
	}{entries})
}

// StringMap is a Jersey map of strings (environment, ACLs, service data).
type StringMap map[string]string

func (m StringMap) MarshalJSON() ([]byte, error) { return encodeEntryMap(map[string]string(m)) }

func (m *StringMap) UnmarshalJSON(b []byte) error {
	v, err := decodeEntryMap[string](b)
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// Int64Map is a Jersey map whose values are integers, possibly written as
// strings ({"entry":{"key":"vcores","value":"20"}}, resourceSecondsMap).
type Int64Map map[string]int64

func (m *Int64Map) UnmarshalJSON(b []byte) error {
	v, err := decodeEntryMap[Int64](b)
	if err != nil {
		return err
	}
	if v == nil {
		*m = nil
		return nil
	}
	out := make(Int64Map, len(v))
	for k, n := range v {
		out[k] = int64(n)
	}
	*m = out
	return nil
}

func (m Int64Map) MarshalJSON() ([]byte, error) { return encodeEntryMap(map[string]int64(m)) }
