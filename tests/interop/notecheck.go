// notecheck verifies clearline's signed notes with Go's golang.org/x/mod/sumdb/note,
// an implementation of the C2SP signed-note format that clearline did not write.
//
// Usage: notecheck NOTE_FILE VKEY [COSIGNER_NAME COSIGNER_KEY_HEX]...
//
// It prints, one per line, the name of each signer whose signature verified, and exits 1
// with the reason if the note does not open. Cosignatures (tlog-cosignature/v1, type 0x04)
// are checked by a Verifier defined here on Go's ed25519 over the message the
// specification gives; the note's parsing and key matching stay x/mod's.
package main

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/mod/sumdb/note"
)

type cosigner struct {
	name string
	key  ed25519.PublicKey
	text []byte // the checkpoint text the cosignature is over
}

func (c cosigner) Name() string { return c.name }

func (c cosigner) KeyHash() uint32 {
	h := sha256.New()
	h.Write([]byte(c.name + "\n"))
	h.Write([]byte{0x04})
	h.Write(c.key)
	return binary.BigEndian.Uint32(h.Sum(nil)[:4])
}

func (c cosigner) Verify(msg, sig []byte) bool {
	if len(sig) != 72 {
		return false
	}
	ts := binary.BigEndian.Uint64(sig[:8])
	signed := append([]byte("cosignature/v1\ntime "+strconv.FormatUint(ts, 10)+"\n"), msg...)
	return ed25519.Verify(c.key, signed, sig[8:])
}

func main() {
	if len(os.Args) < 3 || (len(os.Args)-3)%2 != 0 {
		fmt.Fprintln(os.Stderr, "usage: notecheck NOTE_FILE VKEY [COSIGNER_NAME COSIGNER_KEY_HEX]...")
		os.Exit(2)
	}
	msg, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	logKey, err := note.NewVerifier(os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, "vkey:", err)
		os.Exit(2)
	}
	verifiers := []note.Verifier{logKey}
	for i := 3; i < len(os.Args); i += 2 {
		key, err := hex.DecodeString(os.Args[i+1])
		if err != nil || len(key) != ed25519.PublicKeySize {
			fmt.Fprintln(os.Stderr, "cosigner key: expected 64 hex digits")
			os.Exit(2)
		}
		verifiers = append(verifiers, cosigner{name: os.Args[i], key: key})
	}
	opened, err := note.Open(msg, note.VerifierList(verifiers...))
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(1)
	}
	for _, sig := range opened.Sigs {
		fmt.Println(sig.Name)
	}
}
