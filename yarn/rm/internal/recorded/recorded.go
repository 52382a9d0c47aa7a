// Package recorded reads the request/answer records of
// samples/yarn/rest/confirmations.md (recorded against a real Hadoop 3.3.6
// ResourceManager) so that tests of the client and of the fake RM can replay
// and compare them.
package recorded

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// Record is one "### R<n>" section.
type Record struct {
	N               int
	Title           string
	Method          string
	URL             *url.URL
	RequestBody     string // "" when the request had none
	Status          int
	ResponseHeaders map[string]string
	Body            string // "" for an empty answer
}

var (
	reRequest = regexp.MustCompile("(?m)^Request: `([A-Z]+) ([^`]+)`")
	reStatus  = regexp.MustCompile("(?m)^Status: \\*\\*(\\d+)\\*\\*; response headers: `([^`]*)`")
	reBlock   = regexp.MustCompile("(?s)```[a-z]*\n(.*?)\n```")
)

// Load parses the records of a confirmations.md file.
func Load(path string) ([]Record, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	parts := strings.Split(string(b), "\n### R")
	var out []Record
	for _, p := range parts[1:] {
		head, rest, _ := strings.Cut(p, "\n")
		numStr, title, _ := strings.Cut(head, ". ")
		n, err := strconv.Atoi(numStr)
		if err != nil {
			return nil, fmt.Errorf("record heading %q: %v", head, err)
		}
		r := Record{N: n, Title: title}
		m := reRequest.FindStringSubmatch(rest)
		if m == nil {
			return nil, fmt.Errorf("R%d: no Request line", n)
		}
		r.Method = m[1]
		if r.URL, err = url.Parse(m[2]); err != nil {
			return nil, fmt.Errorf("R%d: %v", n, err)
		}
		req, resp, ok := strings.Cut(rest, "\nStatus: ")
		if !ok {
			return nil, fmt.Errorf("R%d: no Status line", n)
		}
		resp = "Status: " + resp
		if i := strings.Index(req, "Request body:"); i >= 0 {
			if bm := reBlock.FindStringSubmatch(req[i:]); bm != nil {
				r.RequestBody = bm[1]
			}
		}
		sm := reStatus.FindStringSubmatch(resp)
		if sm == nil {
			return nil, fmt.Errorf("R%d: bad Status line", n)
		}
		r.Status, _ = strconv.Atoi(sm[1])
		if err := json.Unmarshal([]byte(sm[2]), &r.ResponseHeaders); err != nil {
			return nil, fmt.Errorf("R%d: response headers: %v", n, err)
		}
		if i := strings.Index(resp, "Response body:"); i >= 0 {
			if bm := reBlock.FindStringSubmatch(resp[i:]); bm != nil {
				r.Body = bm[1]
			}
		}
		out = append(out, r)
	}
	return out, nil
}
