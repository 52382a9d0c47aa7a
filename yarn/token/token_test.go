package token

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/tidewatch/tidewatch/yarn/hadoopproto"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The examples of HADOOP_PROTOCOLS.md §3.1.
func TestVLongExamples(t *testing.T) {
	tests := []struct {
		v   int64
		hex string
	}{
		{0, "00"}, {127, "7f"}, {128, "8f 80"}, {200, "8f c8"}, {256, "8e 01 00"}, {1000, "8e 03 e8"},
		{65536, "8d 01 00 00"}, {-1, "ff"}, {-112, "90"}, {-113, "87 70"}, {-200, "87 c7"},
	}
	for _, tt := range tests {
		want := mustHex(t, tt.hex)
		if got := AppendVLong(nil, tt.v); !bytes.Equal(got, want) {
			t.Errorf("encode %d: % x, want % x", tt.v, got, want)
		}
		got, n, err := ReadVLong(want)
		if err != nil || got != tt.v || n != len(want) {
			t.Errorf("decode % x: %d (%d bytes) %v, want %d", want, got, n, err, tt.v)
		}
	}
}

func TestVLongRoundTripAndLimits(t *testing.T) {
	for _, v := range []int64{math.MinInt64, math.MinInt64 + 1, math.MinInt32, -1 << 40, -65537, 1 << 40, math.MaxInt32, math.MaxInt64} {
		b := AppendVLong(nil, v)
		got, n, err := ReadVLong(b)
		if err != nil || got != v || n != len(b) {
			t.Errorf("%d: got %d (%d of %d bytes) %v", v, got, n, len(b), err)
		}
	}
	if _, _, err := ReadVInt(AppendVLong(nil, math.MaxInt32+1)); !errors.Is(err, ErrMalformed) {
		t.Errorf("VInt overflow: %v", err)
	}
	if _, _, err := ReadVLong([]byte{0x8e, 0x01}); !errors.Is(err, ErrMalformed) {
		t.Errorf("truncated VLong: %v", err)
	}
}

// TestRecordedTokenFiles reads the real token files of the AM containers and
// checks them against container_tokens.decoded.txt.
func TestRecordedTokenFiles(t *testing.T) {
	tests := []struct {
		file       string
		identifier string
		password   string
		appID      int32
		user       string
		username   string
	}{
		{"testdata/container_tokens.bin", "0a0d0a09080110d4fb95d4a034100110f2d9aea1fcffffffff01", "468a0b4f88e78254c786e9349e253d816e584f3e",
			1, "appattempt_1795472850388_0001_000001", "Cg0KCQgBENT7ldSgNBABEPLZrqH8/////wE="},
		{"testdata/container_tokens_probe.bin", "0a0d0a09080610d4fb95d4a034100110f2d9aea1fcffffffff01", "ff3063ec352f4e79033279d0795cf1d85d1213ce",
			6, "appattempt_1795472850388_0006_000001", "Cg0KCQgGENT7ldSgNBABEPLZrqH8/////wE="},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.file), func(t *testing.T) {
			raw, err := os.ReadFile(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			c, err := ReadFile(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Tokens) != 1 || len(c.Secrets) != 0 {
				t.Fatalf("%d tokens, %d secrets", len(c.Tokens), len(c.Secrets))
			}
			e := c.Tokens[0]
			want := Token{Identifier: mustHex(t, tt.identifier), Password: mustHex(t, tt.password), Kind: KindAMRM, Service: ""}
			if e.Alias != "" || !reflect.DeepEqual(e.Token, want) {
				t.Fatalf("token %+v alias %q", e.Token, e.Alias)
			}
			tok, err := c.AMRMToken()
			if err != nil {
				t.Fatal(err)
			}
			if tok.SASLUsername() != tt.username {
				t.Errorf("SASL username %s", tok.SASLUsername())
			}
			id, err := DecodeAMRMIdentifier(tok.Identifier)
			if err != nil {
				t.Fatal(err)
			}
			app := id.Attempt.GetApplicationId()
			if app.GetId() != tt.appID || app.GetClusterTimestamp() != 1795472850388 || id.Attempt.GetAttemptId() != 1 {
				t.Errorf("attempt %v", id.Attempt)
			}
			if id.KeyID != -1003770638 { // negative: a 10-byte varint, 26-byte identifier
				t.Errorf("key id %d", id.KeyID)
			}
			if id.User() != tt.user {
				t.Errorf("user %s", id.User())
			}
			if got := c.MarshalWritable(); !bytes.Equal(got, raw) {
				t.Errorf("re-encoding differs:\n got % x\nwant % x", got, raw)
			}
		})
	}
}

// TestSheetExample is the worked example of §3.5.
func TestSheetExample(t *testing.T) {
	id := mustHex(t, "0a 0d 0a 09 08 01 10 80 d0 95 ff bc 31 10 01 10 7b")
	pw := make([]byte, 20)
	for i := range pw {
		pw[i] = byte(i)
	}
	c := &Credentials{Tokens: []Entry{{Token: Token{Identifier: id, Password: pw, Kind: KindAMRM}}}}
	want := mustHex(t, "48 44 54 53 00 01 00 11 0a 0d 0a 09 08 01 10 80 d0 95 ff bc 31 10 01 10 7b 14 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f 10 11 12 13 10 59 41 52 4e 5f 41 4d 5f 52 4d 5f 54 4f 4b 45 4e 00 00")
	if got := c.MarshalWritable(); !bytes.Equal(got, want) {
		t.Fatalf("got % x", got)
	}
	ai, err := DecodeAMRMIdentifier(id)
	if err != nil || ai.KeyID != 123 || ai.User() != "appattempt_1700000000000_0001_000001" {
		t.Fatalf("%+v %v", ai, err)
	}
	if u := c.Tokens[0].Token.SASLUsername(); u != "Cg0KCQgBEIDQlf+8MRABEHs=" {
		t.Errorf("username %s", u)
	}
}

func TestFormatsRoundTrip(t *testing.T) {
	c := &Credentials{
		Tokens: []Entry{
			{Alias: "", Token: Token{Identifier: []byte{1, 2}, Password: []byte{3}, Kind: KindAMRM}},
			{Alias: "hdfs", Token: Token{Identifier: bytes.Repeat([]byte{7}, 300), Password: []byte("p"), Kind: "HDFS_DELEGATION_TOKEN", Service: "ha-hdfs:ns1"}},
		},
		Secrets: []Secret{{Alias: "k", Value: []byte("v")}},
	}
	pb, err := c.MarshalProtobuf()
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"writable": c.MarshalWritable(), "protobuf": pb} {
		got, err := Parse(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Errorf("%s: got %+v", name, got)
		}
		if tok, err := got.Find("HDFS_DELEGATION_TOKEN"); err != nil || tok.Service != "ha-hdfs:ns1" {
			t.Errorf("%s: Find: %v %v", name, tok, err)
		}
	}
	if _, err := c.Find("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Find missing: %v", err)
	}
}

func TestReadFromEnv(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "container_tokens")
	c := &Credentials{Tokens: []Entry{{Token: Token{Identifier: []byte{1}, Password: []byte{2}, Kind: KindAMRM}}}}
	if err := c.WriteFile(p); err != nil {
		t.Fatal(err)
	}
	got, err := ReadFromEnv(func(k string) string {
		if k == EnvTokenFile {
			return p
		}
		return ""
	})
	if err != nil || len(got.Tokens) != 1 {
		t.Fatalf("%+v %v", got, err)
	}
	if _, err := ReadFromEnv(func(string) string { return "" }); !errors.Is(err, ErrNoTokenFile) {
		t.Errorf("unset: %v", err)
	}
}

func TestMalformed(t *testing.T) {
	good := (&Credentials{Tokens: []Entry{{Token: Token{Identifier: []byte{1}, Password: []byte{2}, Kind: "k"}}}}).MarshalWritable()
	tests := map[string][]byte{
		"empty":           nil,
		"bad magic":       []byte("HDTX\x00\x00\x00"),
		"unknown format":  []byte("HDTS\x02"),
		"truncated":       good[:len(good)-3],
		"trailing":        append(append([]byte{}, good...), 0),
		"negative count":  []byte("HDTS\x00\xff"),
		"negative length": []byte("HDTS\x00\x01\x00\xff"),
		"huge length":     append([]byte("HDTS\x00\x01\x00"), AppendVLong(nil, math.MaxInt32)...),
		"bad protobuf":    []byte("HDTS\x01\x05\x0a\x03"),
		"proto required":  []byte("HDTS\x01\x02\x0a\x00"),
	}
	for name, b := range tests {
		if _, err := Parse(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err %v, want ErrMalformed", name, err)
		}
	}
	if _, err := DecodeAMRMIdentifier([]byte{0xff}); !errors.Is(err, ErrMalformed) {
		t.Errorf("identifier: %v", err)
	}
}

func TestStringHidesPassword(t *testing.T) {
	tok := Token{Identifier: []byte("id"), Password: []byte("s3cret"), Kind: KindNM, Service: "1.2.3.4:45454"}
	if s := tok.String(); strings.Contains(s, "s3cret") || !strings.Contains(s, KindNM) {
		t.Errorf("String() = %q", s)
	}
}

func TestNMIdentifier(t *testing.T) {
	// The NMToken of the recorded allocate response (digest-md5-vector.txt).
	id := mustHex(t, "0a0d0a09080110d4fb95d4a0341001120f0a096c6f63616c686f7374108ee3021a04726f6f742088ddf69404")
	n, err := DecodeNMIdentifier(id)
	if err != nil {
		t.Fatal(err)
	}
	if n.Node.GetHost() != "localhost" || n.Node.GetPort() != 45454 || n.AppSubmitter != "root" || n.KeyID != 1117630088 ||
		n.User() != "appattempt_1795472850388_0001_000001" {
		t.Errorf("%+v", n)
	}
	if got := hadoopproto.AttemptIDString(n.Attempt); got != n.User() {
		t.Error(got)
	}
}

func FuzzParse(f *testing.F) {
	for _, p := range []string{"testdata/container_tokens.bin", "testdata/container_tokens_probe.bin"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	c := &Credentials{Tokens: []Entry{{Alias: "a", Token: Token{Identifier: []byte{1}, Password: []byte{2}, Kind: "k", Service: "s"}}}, Secrets: []Secret{{Alias: "x", Value: []byte{9}}}}
	pb, _ := c.MarshalProtobuf()
	f.Add(pb)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		// What parses re-encodes to something that parses to the same.
		for _, enc := range [][]byte{c.MarshalWritable(), mustProto(t, c)} {
			again, err := Parse(enc)
			if err != nil {
				t.Fatalf("re-encoded credentials do not parse: %v", err)
			}
			if len(again.Tokens) != len(c.Tokens) || len(again.Secrets) != len(c.Secrets) {
				t.Fatalf("round trip changed counts")
			}
			for i := range c.Tokens {
				if !reflect.DeepEqual(norm(again.Tokens[i]), norm(c.Tokens[i])) {
					t.Fatalf("round trip changed token %d", i)
				}
			}
		}
	})
}

func mustProto(t *testing.T, c *Credentials) []byte {
	b, err := c.MarshalProtobuf()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// norm treats nil and empty byte slices alike.
func norm(e Entry) Entry {
	if len(e.Token.Identifier) == 0 {
		e.Token.Identifier = nil
	}
	if len(e.Token.Password) == 0 {
		e.Token.Password = nil
	}
	return e
}
