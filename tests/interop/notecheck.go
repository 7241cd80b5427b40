// notecheck verifies clearline's signed notes with Go's golang.org/x/mod/sumdb/note, an
// implementation of the C2SP signed-note format that clearline did not write, and its
// witness cosignatures (tlog-cosignature/v1) with transparency-dev/formats' note package
// (third-party code kept unchanged under gopath/, see gopath/README.md).
//
// Usage: notecheck NOTE_FILE VKEY [COSIGNER_VKEY]...
//
// It prints, one per line, the name of each signer whose signature verified, and exits 1
// with the reason if the note does not open.
package main

import (
	"fmt"
	"os"

	formats "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: notecheck NOTE_FILE VKEY [COSIGNER_VKEY]...")
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
	for _, vkey := range os.Args[3:] {
		cosigner, err := formats.NewVerifierForCosignatureV1(vkey)
		if err != nil {
			fmt.Fprintln(os.Stderr, "cosigner vkey:", err)
			os.Exit(2)
		}
		verifiers = append(verifiers, cosigner)
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
