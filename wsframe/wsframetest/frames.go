// Package wsframetest builds WebSocket frames as a client sends them, for
// tests of the servers that read them.
package wsframetest

import "encoding/binary"

// MaskedFrame builds a frame as a client sends it: first is the frame's
// first byte (FIN, reserved bits and opcode), and the payload is masked.
func MaskedFrame(first byte, payload []byte) []byte {
	out := []byte{first}
	switch n := len(payload); {
	case n <= 125:
		out = append(out, 0x80|byte(n))
	case n <= 0xFFFF:
		out = append(out, 0x80|126, byte(n>>8), byte(n))
	default:
		out = append(out, 0x80|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	mask := [4]byte{0x12, 0x34, 0x56, 0x78}
	out = append(out, mask[:]...)
	for i, b := range payload {
		out = append(out, b^mask[i&3])
	}
	return out
}
