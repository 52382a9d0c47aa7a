package token

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/tidewatch/tidewatch/yarn/hadoopproto"
)

// EnvTokenFile names the environment variable that points at the container's
// token file.
const EnvTokenFile = "HADOOP_TOKEN_FILE_LOCATION"

// Token kinds an ApplicationMaster meets.
const (
	KindAMRM      = hadoopproto.TokenKindAMRM
	KindNM        = hadoopproto.TokenKindNM
	KindContainer = hadoopproto.TokenKindContainer
)

// Credentials-stream format bytes (after the "HDTS" magic).
const (
	FormatWritable byte = 0
	FormatProtobuf byte = 1
)

// maxFileSize bounds the token file we read into memory.
const maxFileSize = 64 << 20

var magic = []byte("HDTS")

var (
	// ErrMalformed reports a token file or identifier that cannot be decoded.
	ErrMalformed = errors.New("token: malformed data")
	// ErrNotFound reports that no token of the wanted kind is present.
	ErrNotFound = errors.New("token: not found")
	// ErrNoTokenFile reports that HADOOP_TOKEN_FILE_LOCATION is not set.
	ErrNoTokenFile = errors.New("token: " + EnvTokenFile + " is not set")
)

// Token is one Hadoop delegation token (org.apache.hadoop.security.token.Token).
type Token struct {
	Identifier []byte
	Password   []byte // secret: never log it
	Kind       string
	Service    string
}

// String describes the token without its password or identifier bytes.
func (t Token) String() string {
	return fmt.Sprintf("Token{kind=%q service=%q identifier=%d bytes}", t.Kind, t.Service, len(t.Identifier))
}

// Proto returns the token as a hadoop.common.TokenProto, all four required
// fields set.
func (t Token) Proto() *hadoopproto.TokenProto {
	return &hadoopproto.TokenProto{
		Identifier: append([]byte{}, t.Identifier...),
		Password:   append([]byte{}, t.Password...),
		Kind:       proto.String(t.Kind),
		Service:    proto.String(t.Service),
	}
}

// FromProto converts a TokenProto; a nil proto gives the zero Token.
func FromProto(p *hadoopproto.TokenProto) Token {
	return Token{
		Identifier: append([]byte{}, p.GetIdentifier()...),
		Password:   append([]byte{}, p.GetPassword()...),
		Kind:       p.GetKind(),
		Service:    p.GetService(),
	}
}

// SASLUsername is the DIGEST-MD5 user name for this token: the standard,
// padded Base64 of the identifier (HADOOP_PROTOCOLS.md §5.3.1).
func (t Token) SASLUsername() string { return base64.StdEncoding.EncodeToString(t.Identifier) }

// SASLPassword is the DIGEST-MD5 password: the Base64 of the token password.
func (t Token) SASLPassword() string { return base64.StdEncoding.EncodeToString(t.Password) }

// MarshalWritable returns the token in Token Writable form (§3.3), which is
// also what REST submissions carry, Base64url-encoded.
func (t Token) MarshalWritable() []byte {
	return t.appendWritable(nil)
}

func (t Token) appendWritable(dst []byte) []byte {
	dst = appendBytes(dst, t.Identifier)
	dst = appendBytes(dst, t.Password)
	dst = AppendText(dst, t.Kind)
	return AppendText(dst, t.Service)
}

func (d *decoder) token() (Token, error) {
	var t Token
	var err error
	if t.Identifier, err = d.bytes("token identifier"); err != nil {
		return Token{}, err
	}
	if t.Password, err = d.bytes("token password"); err != nil {
		return Token{}, err
	}
	if t.Kind, err = d.text("token kind"); err != nil {
		return Token{}, err
	}
	if t.Service, err = d.text("token service"); err != nil {
		return Token{}, err
	}
	return t, nil
}

// Entry is one token of a Credentials, with its alias.
type Entry struct {
	Alias string
	Token Token
}

// Secret is one secret key of a Credentials.
type Secret struct {
	Alias string
	Value []byte // secret: never log it
}

// Credentials is the content of a token file (Hadoop's Credentials).
type Credentials struct {
	Tokens  []Entry
	Secrets []Secret
}

// Find returns the first token of the given kind.
func (c *Credentials) Find(kind string) (Token, error) {
	for _, e := range c.Tokens {
		if e.Token.Kind == kind {
			return e.Token, nil
		}
	}
	return Token{}, fmt.Errorf("%w: no token of kind %q", ErrNotFound, kind)
}

// AMRMToken returns the AMRMToken. It is selected by kind: its alias and
// service are empty (§3.5).
func (c *Credentials) AMRMToken() (Token, error) { return c.Find(KindAMRM) }

// Parse decodes a credentials stream in either format.
func Parse(b []byte) (*Credentials, error) {
	if len(b) < 5 || string(b[:4]) != string(magic) {
		return nil, fmt.Errorf("%w: no HDTS header", ErrMalformed)
	}
	switch b[4] {
	case FormatWritable:
		return parseWritable(b[5:])
	case FormatProtobuf:
		return parseProtobuf(b[5:])
	default:
		return nil, fmt.Errorf("%w: unknown credentials format %d", ErrMalformed, b[4])
	}
}

func parseWritable(b []byte) (*Credentials, error) {
	d := &decoder{b: b}
	c := &Credentials{}
	n, err := d.vint("token count")
	if err != nil {
		return nil, err
	}
	if n < 0 {
		return nil, fmt.Errorf("%w: negative token count %d", ErrMalformed, n)
	}
	for i := int32(0); i < n; i++ {
		alias, err := d.text("token alias")
		if err != nil {
			return nil, err
		}
		t, err := d.token()
		if err != nil {
			return nil, err
		}
		c.Tokens = append(c.Tokens, Entry{Alias: alias, Token: t})
	}
	n, err = d.vint("secret count")
	if err != nil {
		return nil, err
	}
	if n < 0 {
		return nil, fmt.Errorf("%w: negative secret count %d", ErrMalformed, n)
	}
	for i := int32(0); i < n; i++ {
		alias, err := d.text("secret alias")
		if err != nil {
			return nil, err
		}
		v, err := d.bytes("secret")
		if err != nil {
			return nil, err
		}
		c.Secrets = append(c.Secrets, Secret{Alias: alias, Value: v})
	}
	if d.off != len(b) {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(b)-d.off)
	}
	return c, nil
}

func parseProtobuf(b []byte) (*Credentials, error) {
	l, n := protowire.ConsumeVarint(b)
	if n < 0 || l > uint64(len(b)-n) {
		return nil, fmt.Errorf("%w: bad CredentialsProto length", ErrMalformed)
	}
	if uint64(len(b)-n) != l {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, uint64(len(b)-n)-l)
	}
	var p hadoopproto.CredentialsProto
	if err := proto.Unmarshal(b[n:], &p); err != nil {
		return nil, fmt.Errorf("%w: CredentialsProto: %v", ErrMalformed, err)
	}
	c := &Credentials{}
	for _, kv := range p.GetTokens() {
		if kv.Token == nil {
			return nil, fmt.Errorf("%w: token entry %q without a token", ErrMalformed, kv.GetAlias())
		}
		c.Tokens = append(c.Tokens, Entry{Alias: kv.GetAlias(), Token: FromProto(kv.GetToken())})
	}
	for _, kv := range p.GetSecrets() {
		c.Secrets = append(c.Secrets, Secret{Alias: kv.GetAlias(), Value: append([]byte{}, kv.GetSecret()...)})
	}
	return c, nil
}

// Read decodes a credentials stream from r.
func Read(r io.Reader) (*Credentials, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("token: read credentials: %w", err)
	}
	if len(b) > maxFileSize {
		return nil, fmt.Errorf("%w: credentials larger than %d bytes", ErrMalformed, maxFileSize)
	}
	return Parse(b)
}

// ReadFile reads a token file.
func ReadFile(path string) (*Credentials, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	defer f.Close()
	c, err := Read(f)
	if err != nil {
		return nil, fmt.Errorf("token file %s: %w", path, err)
	}
	return c, nil
}

// ReadFromEnv reads the file named by HADOOP_TOKEN_FILE_LOCATION, looked up
// with getenv (os.Getenv in production).
func ReadFromEnv(getenv func(string) string) (*Credentials, error) {
	p := getenv(EnvTokenFile)
	if p == "" {
		return nil, ErrNoTokenFile
	}
	return ReadFile(p)
}

// MarshalWritable encodes c in the WRITABLE format (format byte 0), which is
// what Hadoop 3.x writes and what a ContainerLaunchContextProto.tokens blob
// must contain.
func (c *Credentials) MarshalWritable() []byte {
	out := append([]byte{}, magic...)
	out = append(out, FormatWritable)
	out = AppendVLong(out, int64(len(c.Tokens)))
	for _, e := range c.Tokens {
		out = AppendText(out, e.Alias)
		out = e.Token.appendWritable(out)
	}
	out = AppendVLong(out, int64(len(c.Secrets)))
	for _, s := range c.Secrets {
		out = AppendText(out, s.Alias)
		out = appendBytes(out, s.Value)
	}
	return out
}

// MarshalProtobuf encodes c in the PROTOBUF format (format byte 1).
func (c *Credentials) MarshalProtobuf() ([]byte, error) {
	p := &hadoopproto.CredentialsProto{}
	for _, e := range c.Tokens {
		p.Tokens = append(p.Tokens, &hadoopproto.CredentialsKVProto{Alias: proto.String(e.Alias), Token: e.Token.Proto()})
	}
	for _, s := range c.Secrets {
		p.Secrets = append(p.Secrets, &hadoopproto.CredentialsKVProto{Alias: proto.String(s.Alias), Secret: append([]byte{}, s.Value...)})
	}
	body, err := proto.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("token: marshal CredentialsProto: %w", err)
	}
	out := append([]byte{}, magic...)
	out = append(out, FormatProtobuf)
	out = protowire.AppendVarint(out, uint64(len(body)))
	return append(out, body...), nil
}

// WriteFile writes c to path in the WRITABLE format with mode 0600.
func (c *Credentials) WriteFile(path string) error {
	if err := os.WriteFile(path, c.MarshalWritable(), 0o600); err != nil {
		return fmt.Errorf("token: %w", err)
	}
	return nil
}
