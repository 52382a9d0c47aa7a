package digestmd5

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/tidewatch/tidewatch/yarn/ipc/ipctest/recorded"
)

func TestComputeKnownVectors(t *testing.T) {
	tests := []struct {
		name        string
		password    string
		r           Response
		wantResp    string
		wantRspAuth string
	}{
		{
			// RFC 2831 §4, the IMAP example.
			name:     "rfc2831",
			password: "secret",
			r: Response{Username: "chris", Realm: "elwood.innosoft.com", Nonce: "OA6MG9tEQGm2hh", NC: NC,
				CNonce: "OA6MHXh6VqTrRk", DigestURI: "imap/elwood.innosoft.com", QOP: QOPAuth},
			wantResp:    "d388dad90d4bbd760a152321f2143af7",
			wantRspAuth: "ea40f60335c427b5527b84dbabcdfffd",
		},
		{
			// HADOOP_PROTOCOLS.md §5.3.5 (hdfs-native), rspauth confirmed in §12.2.
			name:     "hdfs-native",
			password: "Dg+PX4ZBgQkixXcDcnNMy5QCq04=",
			r: Response{Username: "ABpoZGZzL2xvY2FsaG9zdEBFWEFNUExFLkNPTQAAigGObf7Sk4oBjpILVpMBAg==", Realm: "default",
				Nonce: "A+DoU3+eajz9Ei11Ib0S9CUKLyLPh0qFJbwn1/OZ", NC: NC, CNonce: "UGP4ejVb7M54KO4yqDwCsA==",
				DigestURI: "/default", QOP: QOPAuth},
			wantResp:    "6dca7e74e7ea760a91758106fa7c885c",
			wantRspAuth: "bdf9d355de66df797d1262b9d0aca3bb",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ComputeResponse(tt.password, &tt.r); got != tt.wantResp {
				t.Errorf("response %s, want %s", got, tt.wantResp)
			}
			if got := ComputeRspAuth(tt.password, &tt.r); got != tt.wantRspAuth {
				t.Errorf("rspauth %s, want %s", got, tt.wantRspAuth)
			}
		})
	}
}

// recordedVector is one "VECTOR n" block of digest-md5-vector.txt.
type recordedVector struct {
	identifier, password []byte
	challenge, response  string
	final                string
}

func loadVectors(t *testing.T) []recordedVector {
	t.Helper()
	b, err := recorded.File("digest-md5-vector.txt")
	if err != nil {
		t.Fatal(err)
	}
	var out []recordedVector
	var cur *recordedVector
	next := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if next != "" {
			switch next {
			case "challenge":
				cur.challenge = line
			case "response":
				cur.response = line
			case "final":
				cur.final = line
			}
			next = ""
			continue
		}
		switch {
		case strings.HasPrefix(line, "VECTOR "):
			out = append(out, recordedVector{})
			cur = &out[len(out)-1]
		case cur == nil:
		case strings.HasPrefix(line, "token identifier"):
			cur.identifier = hexAfterColon(t, line)
		case strings.HasPrefix(line, "token password"):
			cur.password = hexAfterColon(t, line)
		case strings.HasPrefix(line, "server challenge"):
			next = "challenge"
		case strings.HasPrefix(line, "client response"):
			next = "response"
		case strings.HasPrefix(line, "server final"):
			next = "final"
		case strings.HasPrefix(line, "====") && cur.final != "":
			cur = nil
		}
	}
	if len(out) < 2 {
		t.Fatalf("found %d vectors in digest-md5-vector.txt", len(out))
	}
	return out
}

func hexAfterColon(t *testing.T, line string) []byte {
	t.Helper()
	_, v, _ := strings.Cut(line, ": ")
	b, err := hex.DecodeString(strings.TrimSpace(v))
	if err != nil {
		t.Fatalf("%q: %v", line, err)
	}
	return b
}

// TestRecordedVectors checks the real AM→RM and AM→NM exchanges byte for
// byte: the challenge parses, the client's response re-encodes to the exact
// captured bytes, and response and rspauth recompute from the token.
func TestRecordedVectors(t *testing.T) {
	for i, v := range loadVectors(t) {
		ch, err := ParseChallenge([]byte(v.challenge))
		if err != nil {
			t.Fatalf("vector %d: challenge: %v", i+1, err)
		}
		if !reflect.DeepEqual(ch.Realms, []string{"default"}) || ch.Charset != "utf-8" || !ch.OffersQOP(QOPAuth) || ch.Algorithm != "md5-sess" {
			t.Errorf("vector %d: challenge parsed as %+v", i+1, ch)
		}
		r, err := ParseResponse([]byte(v.response))
		if err != nil {
			t.Fatalf("vector %d: response: %v", i+1, err)
		}
		if got := string(r.Encode()); got != v.response {
			t.Errorf("vector %d: response re-encodes as\n%s\nwant\n%s", i+1, got, v.response)
		}
		if r.Username != base64.StdEncoding.EncodeToString(v.identifier) || r.Nonce != ch.Nonce {
			t.Errorf("vector %d: username %q nonce %q", i+1, r.Username, r.Nonce)
		}
		pw := base64.StdEncoding.EncodeToString(v.password)
		if got := ComputeResponse(pw, r); got != r.Response {
			t.Errorf("vector %d: response %s, captured %s", i+1, got, r.Response)
		}
		rsp, err := ParseRspAuth([]byte(v.final))
		if err != nil {
			t.Fatal(err)
		}
		if got := ComputeRspAuth(pw, r); got != rsp {
			t.Errorf("vector %d: rspauth %s, captured %s", i+1, got, rsp)
		}
		if got := ComputeResponse(pw+"x", r); got == r.Response {
			t.Errorf("vector %d: a wrong password gives the same response", i+1)
		}
	}
}

func TestParseChallenge(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    *Challenge
		wantErr error
	}{
		{
			name: "namenode privacy",
			in:   `realm="default",nonce="QuL3byVoKS0cM/M4b9/Dn2Pa0s/E8HSjXJW7XPim",qop="auth-conf,auth",charset=utf-8,cipher="3des,rc4,des,rc4-56,rc4-40",algorithm=md5-sess`,
			want: &Challenge{Realms: []string{"default"}, Nonce: "QuL3byVoKS0cM/M4b9/Dn2Pa0s/E8HSjXJW7XPim", QOPs: []string{"auth-conf", "auth"},
				Charset: "utf-8", Algorithm: "md5-sess", Ciphers: []string{"3des", "rc4", "des", "rc4-56", "rc4-40"}},
		},
		{
			name: "whitespace, escapes, empty elements, no qop, maxbuf, unknown directive",
			in:   ` realm = "a\"b" ,, nonce="n\\1" , maxbuf=1024, x-ext=y, algorithm=md5-sess `,
			want: &Challenge{Realms: []string{`a"b`}, Nonce: `n\1`, QOPs: []string{"auth"}, Algorithm: "md5-sess", MaxBuf: 1024},
		},
		{name: "no nonce", in: `realm="default",algorithm=md5-sess`, wantErr: ErrMalformed},
		{name: "two nonces", in: `nonce="a",nonce="b",algorithm=md5-sess`, wantErr: ErrMalformed},
		{name: "no algorithm", in: `nonce="a"`, wantErr: ErrMalformed},
		{name: "md5", in: `nonce="a",algorithm=md5`, wantErr: ErrUnsupported},
		{name: "charset", in: `nonce="a",charset=iso-8859-1,algorithm=md5-sess`, wantErr: ErrUnsupported},
		{name: "unterminated", in: `nonce="a,algorithm=md5-sess`, wantErr: ErrMalformed},
		{name: "no equals", in: `nonce`, wantErr: ErrMalformed},
		{name: "junk after value", in: `nonce="a"b,algorithm=md5-sess`, wantErr: ErrMalformed},
		{name: "bad maxbuf", in: `nonce="a",maxbuf=-1,algorithm=md5-sess`, wantErr: ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseChallenge([]byte(tt.in))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseResponseRequiredDirectives(t *testing.T) {
	full := `username="u",realm="default",nonce="n",nc=00000001,cnonce="c",digest-uri="/default",response=0123,qop=auth`
	if _, err := ParseResponse([]byte(full)); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"username", "nonce", "nc", "cnonce", "digest-uri", "response"} {
		var parts []string
		for _, p := range strings.Split(full, ",") {
			if !strings.HasPrefix(p, k+"=") {
				parts = append(parts, p)
			}
		}
		if _, err := ParseResponse([]byte(strings.Join(parts, ","))); !errors.Is(err, ErrMalformed) {
			t.Errorf("without %s: err %v", k, err)
		}
	}
	if _, err := ParseResponse([]byte(full + `,nonce="x"`)); !errors.Is(err, ErrMalformed) {
		t.Errorf("repeated nonce: err %v", err)
	}
}

func FuzzParseChallenge(f *testing.F) {
	for _, v := range []string{
		`realm="default",nonce="c+RwBIP5ZqOhRRLyM2c4b4NpKiQkfUnxtzeT3D1e",qop="auth",charset=utf-8,algorithm=md5-sess`,
		`realm="default",nonce="x",qop="auth-conf",charset=utf-8,cipher="3des,rc4,des,rc4-56,rc4-40",algorithm=md5-sess`,
		`nonce="a\"b",,algorithm = md5-sess`,
		`rspauth=627cf1986262ac7b45d27cddb627ce74`,
	} {
		f.Add([]byte(v))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ds, err := ParseDirectives(b)
		if err != nil {
			if _, err2 := ParseChallenge(b); err2 == nil {
				t.Fatalf("ParseChallenge accepts what ParseDirectives refuses: %v", err)
			}
			return
		}
		// Quoting every value and parsing again gives the same directives.
		var sb strings.Builder
		for i, d := range ds {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString(d.Key + "=" + quote(d.Value))
		}
		again, err := ParseDirectives([]byte(sb.String()))
		if err != nil {
			t.Fatalf("re-encoded directives do not parse: %v (%q)", err, sb.String())
		}
		if len(again) != len(ds) {
			t.Fatalf("round trip: %d directives, then %d", len(ds), len(again))
		}
		for i := range ds {
			if again[i] != ds[i] {
				t.Fatalf("round trip: %+v became %+v", ds[i], again[i])
			}
		}
		if ch, err := ParseChallenge(b); err == nil && (ch.Nonce == "" || ch.Algorithm != "md5-sess" || len(ch.QOPs) == 0) {
			t.Fatalf("accepted an invalid challenge: %+v", ch)
		}
	})
}
