package digestmd5

import (
	"bytes"
	"crypto/cipher"
	"crypto/des"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rc4"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
)

// Ciphers of qop auth-conf (RFC 2831 §2.1.2), in the order a client should
// prefer them. 3des comes first because the JDK client picks it and the
// real cluster was verified with it (HADOOP_PROTOCOLS.md §12.3).
var Ciphers = []string{"3des", "rc4", "des", "rc4-56", "rc4-40"}

// DefaultMaxBuf is the peer's receive buffer size when it advertises none.
const DefaultMaxBuf = 65536

const (
	macLen     = 10 // HMAC-MD5 truncated to 10 bytes
	trailerLen = 6  // message type 00 01 and the 4-byte sequence number
)

// Magic constants of the key derivation (RFC 2831 §2.3 and §2.4).
const (
	kicMagic = "Digest session key to client-to-server signing key magic constant"
	kisMagic = "Digest session key to server-to-client signing key magic constant"
	kccMagic = "Digest H(A1) to client-to-server sealing key magic constant"
	kcsMagic = "Digest H(A1) to server-to-client sealing key magic constant"
)

// ErrIntegrity reports a wrapped message that does not verify: a bad MAC,
// padding, message type or sequence number. The connection cannot be used
// any further.
var ErrIntegrity = errors.New("digestmd5: security layer: message does not verify")

// SessionKey returns H(A1), the raw 16-byte session key of the exchange in
// r under password (RFC 2831 §2.1.2.1). The security layer's keys derive
// from it.
func SessionKey(password string, r *Response) [16]byte {
	ss := md5.Sum([]byte(r.Username + ":" + r.Realm + ":" + password))
	a1 := append(ss[:], []byte(":"+r.Nonce+":"+r.CNonce)...)
	if r.Authzid != "" {
		a1 = append(a1, []byte(":"+r.Authzid)...)
	}
	return md5.Sum(a1)
}

// Layer is one end's SASL security layer for qop auth-int or auth-conf
// (HADOOP_PROTOCOLS.md §5.5): it wraps what this end sends and unwraps what
// the peer sends. Each direction keeps its own sequence number and, for
// auth-conf, its own cipher stream, which continues from one message to
// the next. A Layer is not safe for concurrent use, but Wrap and Unwrap
// touch disjoint state and may run on two goroutines, one each.
type Layer struct {
	qop string

	sendMAC, recvMAC []byte // HMAC keys: Kic and Kis on a client
	sendSeq, recvSeq uint32

	// auth-conf only. blockSize is 0 for the rc4 stream ciphers.
	seal      func(dst, src []byte)
	unseal    func(dst, src []byte)
	blockSize int
}

// NewLayer returns the security layer of one end of an exchange with
// session key ha1 (SessionKey) that negotiated qop and, for auth-conf,
// cipher. client selects the client's keys for sending.
func NewLayer(ha1 [16]byte, qop, cipherName string, client bool) (*Layer, error) {
	l := &Layer{qop: qop}
	kic := md5.Sum(append(ha1[:], kicMagic...))
	kis := md5.Sum(append(ha1[:], kisMagic...))
	l.sendMAC, l.recvMAC = kic[:], kis[:]
	if !client {
		l.sendMAC, l.recvMAC = kis[:], kic[:]
	}
	switch qop {
	case QOPAuthInt:
		return l, nil
	case QOPAuthConf:
	default:
		return nil, fmt.Errorf("%w: qop %q has no security layer", ErrUnsupported, qop)
	}
	n := 16
	switch cipherName {
	case "rc4-56":
		n = 7
	case "rc4-40":
		n = 5
	}
	kcc := md5.Sum(append(append([]byte(nil), ha1[:n]...), kccMagic...))
	kcs := md5.Sum(append(append([]byte(nil), ha1[:n]...), kcsMagic...))
	sendKey, recvKey := kcc, kcs
	if !client {
		sendKey, recvKey = kcs, kcc
	}
	switch cipherName {
	case "rc4", "rc4-56", "rc4-40":
		enc, _ := rc4.NewCipher(sendKey[:]) // 16 bytes: always a valid key
		dec, _ := rc4.NewCipher(recvKey[:])
		l.seal, l.unseal = enc.XORKeyStream, dec.XORKeyStream
	case "des", "3des":
		enc, err := newDESCipher(cipherName, sendKey)
		if err != nil {
			return nil, err
		}
		dec, err := newDESCipher(cipherName, recvKey)
		if err != nil {
			return nil, err
		}
		l.seal = cipher.NewCBCEncrypter(enc, sendKey[8:]).CryptBlocks
		l.unseal = cipher.NewCBCDecrypter(dec, recvKey[8:]).CryptBlocks
		l.blockSize = des.BlockSize
	default:
		return nil, fmt.Errorf("%w: cipher %q", ErrUnsupported, cipherName)
	}
	return l, nil
}

// newDESCipher builds the DES or two-key 3DES block cipher of sealing key
// material kc: DES uses the expansion of kc[0:7], 3DES K1||K2||K1 with K2
// the expansion of kc[7:14]. The IV, kc[8:16], is the caller's.
func newDESCipher(name string, kc [16]byte) (cipher.Block, error) {
	k1 := expandDESKey(kc[0:7])
	if name == "des" {
		return des.NewCipher(k1[:])
	}
	k2 := expandDESKey(kc[7:14])
	key := make([]byte, 0, 24)
	key = append(append(append(key, k1[:]...), k2[:]...), k1[:]...)
	return des.NewTripleDESCipher(key)
}

// expandDESKey spreads 56 key bits over 8 bytes, 7 bits each in the high
// bits, and sets odd parity in the low bit of every byte.
func expandDESKey(k []byte) [8]byte {
	v := uint64(0)
	for _, b := range k[:7] {
		v = v<<8 | uint64(b)
	}
	var out [8]byte
	for i := range out {
		b := byte(v>>(49-7*i)) << 1 // bits 55-7i … 49-7i of the 56
		p := byte(1)
		for x := b; x != 0; x >>= 1 {
			p ^= x & 1
		}
		out[i] = b | p
	}
	return out
}

// QOP returns the layer's qop.
func (l *Layer) QOP() string { return l.qop }

// MaxSendSize returns the most plaintext bytes one Wrap may carry to a peer
// that advertised receive buffer peerMaxBuf (0: DefaultMaxBuf): the buffer
// less the MAC, trailer and, for auth-conf, the largest padding.
func (l *Layer) MaxSendSize(peerMaxBuf int) int {
	if peerMaxBuf <= 0 {
		peerMaxBuf = DefaultMaxBuf
	}
	if l.qop == QOPAuthConf {
		return peerMaxBuf - 26
	}
	return peerMaxBuf - 16
}

func (l *Layer) mac(key []byte, seq uint32, msg []byte) []byte {
	h := hmac.New(md5.New, key)
	var s [4]byte
	binary.BigEndian.PutUint32(s[:], seq)
	h.Write(s[:])
	h.Write(msg)
	return h.Sum(nil)[:macLen]
}

// Wrap protects msg for sending and advances the send sequence number.
func (l *Layer) Wrap(msg []byte) []byte {
	seq := l.sendSeq
	l.sendSeq++
	mac := l.mac(l.sendMAC, seq, msg)
	var out []byte
	if l.qop == QOPAuthInt {
		out = make([]byte, 0, len(msg)+macLen+trailerLen)
		out = append(append(out, msg...), mac...)
	} else {
		pad := 0
		if l.blockSize > 0 {
			pad = l.blockSize - (len(msg)+macLen)%l.blockSize
		}
		out = make([]byte, 0, len(msg)+pad+macLen+trailerLen)
		out = append(out, msg...)
		for range pad {
			out = append(out, byte(pad))
		}
		out = append(out, mac...)
		l.seal(out, out)
	}
	out = append(out, 0, 1)
	return binary.BigEndian.AppendUint32(out, seq)
}

// Unwrap checks and removes the protection of a token the peer wrapped and
// advances the receive sequence number. Any failure wraps ErrIntegrity.
func (l *Layer) Unwrap(tok []byte) ([]byte, error) {
	if len(tok) < macLen+trailerLen {
		return nil, fmt.Errorf("%w: %d bytes is shorter than MAC and trailer", ErrIntegrity, len(tok))
	}
	body, trailer := tok[:len(tok)-trailerLen], tok[len(tok)-trailerLen:]
	if trailer[0] != 0 || trailer[1] != 1 {
		return nil, fmt.Errorf("%w: message type %02x%02x, want 0001", ErrIntegrity, trailer[0], trailer[1])
	}
	if seq := binary.BigEndian.Uint32(trailer[2:]); seq != l.recvSeq {
		return nil, fmt.Errorf("%w: sequence number %d, want %d", ErrIntegrity, seq, l.recvSeq)
	}
	if l.qop == QOPAuthConf {
		if l.blockSize > 0 && len(body)%l.blockSize != 0 {
			return nil, fmt.Errorf("%w: %d sealed bytes is not a multiple of the block size", ErrIntegrity, len(body))
		}
		body = bytes.Clone(body)
		l.unseal(body, body)
	}
	msg, mac := body[:len(body)-macLen], body[len(body)-macLen:]
	if l.blockSize > 0 {
		p := 0
		if len(msg) > 0 {
			p = int(msg[len(msg)-1])
		}
		if p < 1 || p > l.blockSize || p > len(msg) {
			return nil, fmt.Errorf("%w: bad padding", ErrIntegrity)
		}
		for _, b := range msg[len(msg)-p:] {
			if int(b) != p {
				return nil, fmt.Errorf("%w: bad padding", ErrIntegrity)
			}
		}
		msg = msg[:len(msg)-p]
	}
	if subtle.ConstantTimeCompare(mac, l.mac(l.recvMAC, l.recvSeq, msg)) != 1 {
		return nil, fmt.Errorf("%w: MAC mismatch at sequence number %d", ErrIntegrity, l.recvSeq)
	}
	l.recvSeq++
	return msg, nil
}
