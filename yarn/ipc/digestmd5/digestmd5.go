// Package digestmd5 implements the parts of SASL DIGEST-MD5 (RFC 2831) that
// Hadoop IPC uses for TOKEN authentication: parsing the server's challenge and
// the client's response, and computing the response and rspauth values with
// algorithm md5-sess. Both the client in package ipc and the test server in
// package ipctest use it.
//
// The integrity and privacy security layers that follow the exchange when
// the qop is auth-int or auth-conf (HADOOP_PROTOCOLS.md §5.5) are in
// layer.go: all five ciphers the JDK offers, 3des, rc4, des, rc4-56 and
// rc4-40.
package digestmd5

import (
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Quality-of-protection values (RFC 2831 §2.1.1).
const (
	QOPAuth     = "auth"
	QOPAuthInt  = "auth-int"
	QOPAuthConf = "auth-conf"
)

// NC is the only nonce count a Hadoop server accepts: one response per nonce.
const NC = "00000001"

// maxDirectivesLen bounds what the parser accepts; real challenges and
// responses are a few hundred bytes.
const maxDirectivesLen = 64 << 10

var (
	// ErrMalformed reports a challenge or response that does not follow the
	// RFC 2831 syntax or lacks a required directive.
	ErrMalformed = errors.New("digestmd5: malformed message")
	// ErrUnsupported reports a valid challenge that asks for something this
	// package does not implement (an algorithm other than md5-sess, a charset
	// other than utf-8).
	ErrUnsupported = errors.New("digestmd5: unsupported challenge")
)

// Directive is one key=value pair of a challenge or response. Keys are
// lower-cased; quoted values are unescaped.
type Directive struct {
	Key   string
	Value string
}

// ParseDirectives splits a DIGEST-MD5 message into its directives: a comma
// separated list of key=token or key="quoted-string", with optional linear
// white space around elements and empty list elements allowed (RFC 2831 §7.1).
// Inside a quoted string a backslash quotes the next character.
func ParseDirectives(b []byte) ([]Directive, error) {
	if len(b) > maxDirectivesLen {
		return nil, fmt.Errorf("%w: %d bytes is too long", ErrMalformed, len(b))
	}
	var out []Directive
	i, n := 0, len(b)
	skipLWS := func() {
		for i < n && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
			i++
		}
	}
	for {
		// Skip separators and empty elements.
		for i < n && (b[i] == ',' || b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
			i++
		}
		if i == n {
			return out, nil
		}
		start := i
		for i < n && isTokenChar(b[i]) {
			i++
		}
		if i == start {
			return nil, fmt.Errorf("%w: expected a directive name at offset %d", ErrMalformed, i)
		}
		key := strings.ToLower(string(b[start:i]))
		skipLWS()
		if i == n || b[i] != '=' {
			return nil, fmt.Errorf("%w: directive %q has no '='", ErrMalformed, key)
		}
		i++
		skipLWS()
		var val string
		if i < n && b[i] == '"' {
			i++
			var sb strings.Builder
			closed := false
			for i < n {
				c := b[i]
				if c == '\\' {
					if i+1 == n {
						break
					}
					sb.WriteByte(b[i+1])
					i += 2
					continue
				}
				if c == '"' {
					closed = true
					i++
					break
				}
				sb.WriteByte(c)
				i++
			}
			if !closed {
				return nil, fmt.Errorf("%w: unterminated quoted value of %q", ErrMalformed, key)
			}
			val = sb.String()
		} else {
			vs := i
			for i < n && isTokenChar(b[i]) {
				i++
			}
			val = string(b[vs:i])
		}
		out = append(out, Directive{Key: key, Value: val})
		skipLWS()
		if i < n && b[i] != ',' {
			return nil, fmt.Errorf("%w: unexpected %q after directive %q", ErrMalformed, b[i], key)
		}
	}
}

// isTokenChar reports whether c may appear in an RFC 2616 token.
func isTokenChar(c byte) bool {
	if c <= ' ' || c >= 0x7f {
		return false
	}
	return !strings.ContainsRune("()<>@,;:\\\"/[]?={} \t", rune(c))
}

// Challenge is a parsed digest-challenge (RFC 2831 §2.1.1).
type Challenge struct {
	Realms    []string
	Nonce     string
	QOPs      []string // as offered; "auth" when the server sent no qop
	Charset   string   // "" or "utf-8"
	Algorithm string   // always "md5-sess" after a successful parse
	Ciphers   []string
	MaxBuf    int // 0 when absent
}

// ParseChallenge parses and validates a server challenge. The nonce and
// algorithm must appear exactly once, and the algorithm must be md5-sess.
func ParseChallenge(b []byte) (*Challenge, error) {
	ds, err := ParseDirectives(b)
	if err != nil {
		return nil, err
	}
	ch := &Challenge{}
	seen := map[string]bool{}
	for _, d := range ds {
		switch d.Key {
		case "realm":
			ch.Realms = append(ch.Realms, d.Value)
			continue
		case "nonce", "qop", "charset", "algorithm", "cipher", "maxbuf", "stale":
			if seen[d.Key] {
				return nil, fmt.Errorf("%w: challenge repeats %q", ErrMalformed, d.Key)
			}
			seen[d.Key] = true
		default:
			continue // unknown directives are ignored (RFC 2831 §2.1.1)
		}
		switch d.Key {
		case "nonce":
			ch.Nonce = d.Value
		case "qop":
			ch.QOPs = splitList(d.Value)
			if len(ch.QOPs) == 0 {
				return nil, fmt.Errorf("%w: empty qop list", ErrMalformed)
			}
		case "charset":
			ch.Charset = d.Value
		case "algorithm":
			ch.Algorithm = d.Value
		case "cipher":
			ch.Ciphers = splitList(d.Value)
		case "maxbuf":
			v, err := strconv.Atoi(d.Value)
			if err != nil || v <= 0 {
				return nil, fmt.Errorf("%w: bad maxbuf %q", ErrMalformed, d.Value)
			}
			ch.MaxBuf = v
		}
	}
	if ch.Nonce == "" {
		return nil, fmt.Errorf("%w: challenge has no nonce", ErrMalformed)
	}
	if !seen["algorithm"] {
		return nil, fmt.Errorf("%w: challenge has no algorithm", ErrMalformed)
	}
	if ch.Algorithm != "md5-sess" {
		return nil, fmt.Errorf("%w: algorithm %q", ErrUnsupported, ch.Algorithm)
	}
	if ch.Charset != "" && !strings.EqualFold(ch.Charset, "utf-8") {
		return nil, fmt.Errorf("%w: charset %q", ErrUnsupported, ch.Charset)
	}
	if !seen["qop"] {
		ch.QOPs = []string{QOPAuth}
	}
	return ch, nil
}

// OffersQOP reports whether the challenge offers qop q.
func (c *Challenge) OffersQOP(q string) bool {
	for _, v := range c.QOPs {
		if v == q {
			return true
		}
	}
	return false
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Response is a digest-response (RFC 2831 §2.1.2). Response holds the
// 32-hex-digit response value.
type Response struct {
	Charset   string
	Username  string
	Realm     string
	HasRealm  bool
	Nonce     string
	NC        string
	CNonce    string
	DigestURI string
	MaxBuf    int
	Response  string
	QOP       string
	Cipher    string
	Authzid   string
}

// Encode renders the response in the order the JDK client uses
// (HADOOP_PROTOCOLS.md §5.3.3), which the recorded exchanges reproduce.
func (r *Response) Encode() []byte {
	var sb strings.Builder
	add := func(k, v string, quoted bool) {
		if sb.Len() > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(k)
		sb.WriteByte('=')
		if quoted {
			sb.WriteString(quote(v))
		} else {
			sb.WriteString(v)
		}
	}
	if r.Charset != "" {
		add("charset", r.Charset, false)
	}
	add("username", r.Username, true)
	if r.HasRealm {
		add("realm", r.Realm, true)
	}
	add("nonce", r.Nonce, true)
	add("nc", r.NC, false)
	add("cnonce", r.CNonce, true)
	add("digest-uri", r.DigestURI, true)
	if r.MaxBuf > 0 {
		add("maxbuf", strconv.Itoa(r.MaxBuf), false)
	}
	add("response", r.Response, false)
	add("qop", r.QOP, false)
	if r.Cipher != "" {
		add("cipher", r.Cipher, true)
	}
	if r.Authzid != "" {
		add("authzid", r.Authzid, true)
	}
	return []byte(sb.String())
}

func quote(s string) string {
	var sb strings.Builder
	sb.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			sb.WriteByte('\\')
		}
		sb.WriteByte(s[i])
	}
	sb.WriteByte('"')
	return sb.String()
}

// ParseResponse parses a client's digest-response. Every directive may appear
// at most once; username, nonce, cnonce, nc, digest-uri and response are
// required. A missing qop means auth.
func ParseResponse(b []byte) (*Response, error) {
	ds, err := ParseDirectives(b)
	if err != nil {
		return nil, err
	}
	r := &Response{}
	seen := map[string]bool{}
	for _, d := range ds {
		if seen[d.Key] {
			return nil, fmt.Errorf("%w: response repeats %q", ErrMalformed, d.Key)
		}
		seen[d.Key] = true
		switch d.Key {
		case "charset":
			r.Charset = d.Value
		case "username":
			r.Username = d.Value
		case "realm":
			r.Realm, r.HasRealm = d.Value, true
		case "nonce":
			r.Nonce = d.Value
		case "nc":
			r.NC = d.Value
		case "cnonce":
			r.CNonce = d.Value
		case "digest-uri":
			r.DigestURI = d.Value
		case "maxbuf":
			v, err := strconv.Atoi(d.Value)
			if err != nil || v <= 0 {
				return nil, fmt.Errorf("%w: bad maxbuf %q", ErrMalformed, d.Value)
			}
			r.MaxBuf = v
		case "response":
			r.Response = d.Value
		case "qop":
			r.QOP = d.Value
		case "cipher":
			r.Cipher = d.Value
		case "authzid":
			r.Authzid = d.Value
		}
	}
	for _, k := range []string{"username", "nonce", "cnonce", "nc", "digest-uri", "response"} {
		if !seen[k] {
			return nil, fmt.Errorf("%w: response has no %s", ErrMalformed, k)
		}
	}
	if r.QOP == "" {
		r.QOP = QOPAuth
	}
	return r, nil
}

// ComputeResponse returns the response value for r's username, realm, nonce,
// cnonce, nc, qop, digest-uri and authzid under password (RFC 2831 §2.1.2.1).
func ComputeResponse(password string, r *Response) string {
	return kd(password, r, "AUTHENTICATE:")
}

// ComputeRspAuth returns the rspauth value the server sends back for r
// (RFC 2831 §2.1.3): the same computation with an empty method in A2.
func ComputeRspAuth(password string, r *Response) string {
	return kd(password, r, ":")
}

func kd(password string, r *Response, a2Prefix string) string {
	ha1 := SessionKey(password, r)
	a2 := a2Prefix + r.DigestURI
	if r.QOP == QOPAuthInt || r.QOP == QOPAuthConf {
		a2 += ":00000000000000000000000000000000"
	}
	ha2 := md5.Sum([]byte(a2))
	sum := md5.Sum([]byte(hex.EncodeToString(ha1[:]) + ":" + r.Nonce + ":" + r.NC + ":" + r.CNonce + ":" + r.QOP + ":" + hex.EncodeToString(ha2[:])))
	return hex.EncodeToString(sum[:])
}

// ParseRspAuth extracts the rspauth value from a server's final message
// ("rspauth=<32 hex>").
func ParseRspAuth(b []byte) (string, error) {
	ds, err := ParseDirectives(b)
	if err != nil {
		return "", err
	}
	for _, d := range ds {
		if d.Key == "rspauth" {
			return d.Value, nil
		}
	}
	return "", fmt.Errorf("%w: no rspauth", ErrMalformed)
}
