// tilecheck reads a clearline log over HTTP as C2SP tlog-tiles and verifies it with Go's
// golang.org/x/mod/sumdb/tlog, an implementation of tiled transparency logs that clearline
// did not write: the checkpoint's signature (x/mod's sumdb/note); the tree hash the tiles
// give against the checkpoint's size and root (tlog.TileHashReader, tlog.TreeHash); an
// entry's inclusion (tlog.ProveRecord, tlog.CheckRecord); with -all, every entry and every
// tile of the tree, each tile compared with what x/mod computes from the entries
// (tlog.StoredHashes, tlog.NewTiles, tlog.ReadTileData); and, given an older checkpoint,
// the log's consistency with it (tlog.ProveTree, tlog.CheckTree).
//
// Usage: tilecheck [-all] [-old SIZE:BASE64ROOT] PREFIX TOKEN VKEY INDEX
//
// PREFIX is the log's tiles URL (http://HOST:PORT/v1/log/tiles), TOKEN an API bearer
// token, VKEY the log's note verifier key. It prints what it checked, one line each, and
// exits 1 with the reason at the first thing that does not verify.
//
// -all does not lean on TileHashReader to authenticate the full tiles it reads: in x/mod
// 0.7.0 it checks full tiles against their parents from position len(stx) of its tile
// list on, while the tree-hash tiles before them were de-duplicated, so a full tile
// requested after several tree-hash hashes that share a tile is passed unchecked (seen
// here: a level-0 tile with one hash changed, under a partial level-1 tile). Proofs
// still fail on such a tile (CheckRecord, CheckTree recompute the root), and -all
// compares every tile with the hashes x/mod derives from the entries.
//
// x/mod names tiles tile/H/L/N[.p/W] (height in the path, records at level "data");
// C2SP fixes the height at 8 and names them tile/L/N[.p/W] and tile/entries/N[.p/W].
// Only the paths are mapped here; which tiles to fetch and how to check them is x/mod's.
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const height = 8

type server struct {
	prefix string
	token  string
	client *http.Client
}

func (s server) get(path string) ([]byte, error) {
	req, err := http.NewRequest("GET", s.prefix+"/"+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<25))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, bytes.TrimSpace(body))
	}
	return body, nil
}

// c2spPath maps x/mod's tile path to C2SP's.
func c2spPath(t tlog.Tile) string {
	path := t.Path() // tile/8/L/N[.p/W], or tile/8/data/N[.p/W]
	rest := strings.TrimPrefix(path, "tile/"+strconv.Itoa(height)+"/")
	if strings.HasPrefix(rest, "data/") {
		rest = "entries/" + strings.TrimPrefix(rest, "data/")
	}
	return "tile/" + rest
}

// tileReader serves x/mod's requests for hash tiles from the server, as C2SP paths.
type tileReader struct {
	server
	fetched map[string]bool
}

func (r tileReader) Height() int { return height }

func (r tileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		path := c2spPath(t)
		data, err := r.get(path)
		if err != nil {
			return nil, err
		}
		r.fetched[path] = true
		out[i] = data
	}
	return out, nil
}

func (r tileReader) SaveTiles(tiles []tlog.Tile, data [][]byte) {}

// parseCheckpoint reads a tlog-checkpoint's text: origin, size, base64 root.
func parseCheckpoint(text string) (string, tlog.Tree, error) {
	lines := strings.Split(text, "\n")
	if len(lines) < 4 || lines[len(lines)-1] != "" {
		return "", tlog.Tree{}, fmt.Errorf("checkpoint: expected origin, size and root lines")
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return "", tlog.Tree{}, fmt.Errorf("checkpoint: bad size %q", lines[1])
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != tlog.HashSize {
		return "", tlog.Tree{}, fmt.Errorf("checkpoint: bad root %q", lines[2])
	}
	tree := tlog.Tree{N: size}
	copy(tree.Hash[:], root)
	return lines[0], tree, nil
}

// bundle reads entry bundle n of the tree (partial if the tree ends inside it).
func bundle(s server, tree tlog.Tree, n int64) ([][]byte, error) {
	first := n << height
	width := tree.N - first
	if width > 1<<height {
		width = 1 << height
	}
	t := tlog.Tile{H: height, L: -1, N: n, W: int(width)}
	data, err := s.get(c2spPath(t))
	if err != nil {
		return nil, err
	}
	var entries [][]byte
	for len(data) > 0 {
		if len(data) < 2 {
			return nil, fmt.Errorf("%s: truncated length", c2spPath(t))
		}
		size := int(binary.BigEndian.Uint16(data))
		if len(data) < 2+size {
			return nil, fmt.Errorf("%s: entry %d runs past the end", c2spPath(t), len(entries))
		}
		entries = append(entries, data[2:2+size])
		data = data[2+size:]
	}
	if int64(len(entries)) != width {
		return nil, fmt.Errorf("%s: %d entries, expected %d", c2spPath(t), len(entries), width)
	}
	return entries, nil
}

// hashStore holds the stored hashes x/mod computes as it adds records, as a sumdb server
// keeps them.
type hashStore map[int64]tlog.Hash

func (h hashStore) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		hash, ok := h[x]
		if !ok {
			return nil, fmt.Errorf("no stored hash %d", x)
		}
		out[i] = hash
	}
	return out, nil
}

// checkAll reads every entry, builds the tree from them with x/mod, checks its root against
// the checkpoint, then checks every tile of the tree against x/mod's.
func checkAll(s server, tree tlog.Tree) error {
	store := hashStore{}
	count := int64(0)
	for n := int64(0); n<<height < tree.N; n++ {
		entries, err := bundle(s, tree, n)
		if err != nil {
			return fmt.Errorf("entries: %v", err)
		}
		for _, entry := range entries {
			hashes, err := tlog.StoredHashes(count, entry, store)
			if err != nil {
				return err
			}
			first := tlog.StoredHashCount(count)
			for i, h := range hashes {
				store[first+int64(i)] = h
			}
			count++
		}
	}
	root, err := tlog.TreeHash(tree.N, store)
	if err != nil {
		return err
	}
	if root != tree.Hash {
		return fmt.Errorf("entries: the entries give root %s, the checkpoint %s", root, tree.Hash)
	}
	fmt.Printf("entries %d verified\n", count)
	tiles := tlog.NewTiles(height, 0, tree.N)
	for _, t := range tiles {
		want, err := tlog.ReadTileData(t, store)
		if err != nil {
			return err
		}
		got, err := s.get(c2spPath(t))
		if err != nil {
			return fmt.Errorf("tiles: %v", err)
		}
		if !bytes.Equal(got, want) {
			return fmt.Errorf("tiles: %s is not the hashes the entries give", c2spPath(t))
		}
	}
	fmt.Printf("tiles %d verified\n", len(tiles))
	return nil
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

func main() {
	all := flag.Bool("all", false, "read and check every entry bundle and the tiles under it")
	old := flag.String("old", "", "an older checkpoint SIZE:BASE64ROOT to prove consistency with")
	flag.Parse()
	if flag.NArg() != 4 {
		fmt.Fprintln(os.Stderr, "usage: tilecheck [-all] [-old SIZE:ROOT] PREFIX TOKEN VKEY INDEX")
		os.Exit(2)
	}
	s := server{strings.TrimSuffix(flag.Arg(0), "/"), flag.Arg(1), &http.Client{Timeout: 30 * time.Second}}
	verifier, err := note.NewVerifier(flag.Arg(2))
	if err != nil {
		fmt.Fprintln(os.Stderr, "vkey:", err)
		os.Exit(2)
	}
	index, err := strconv.ParseInt(flag.Arg(3), 10, 64)
	if err != nil {
		fmt.Fprintln(os.Stderr, "index:", err)
		os.Exit(2)
	}

	msg, err := s.get("checkpoint")
	if err != nil {
		fail("checkpoint: %v", err)
	}
	opened, err := note.Open(msg, note.VerifierList(verifier))
	if err != nil {
		fail("checkpoint: %v", err)
	}
	origin, tree, err := parseCheckpoint(opened.Text)
	if err != nil {
		fail("%v", err)
	}
	if origin != verifier.Name() {
		fail("checkpoint: origin %q is not the key's name %q", origin, verifier.Name())
	}
	fmt.Printf("checkpoint %s %d %s\n", origin, tree.N, tree.Hash)

	reader := tileReader{s, map[string]bool{}}
	hr := tlog.TileHashReader(tree, reader)
	root, err := tlog.TreeHash(tree.N, hr)
	if err != nil {
		fail("tree: %v", err)
	}
	if root != tree.Hash {
		fail("tree: the tiles give root %s, the checkpoint %s", root, tree.Hash)
	}
	fmt.Printf("tree %d verified\n", tree.N)

	if index < 0 || index >= tree.N {
		fail("index %d is outside the tree of size %d", index, tree.N)
	}
	entries, err := bundle(s, tree, index>>height)
	if err != nil {
		fail("entries: %v", err)
	}
	entry := entries[index%(1<<height)]
	proof, err := tlog.ProveRecord(tree.N, index, hr)
	if err != nil {
		fail("inclusion: %v", err)
	}
	if err := tlog.CheckRecord(proof, tree.N, tree.Hash, index, tlog.RecordHash(entry)); err != nil {
		fail("inclusion of %d: %v", index, err)
	}
	fmt.Printf("entry %d included (%d bytes, proof of %d hashes)\n", index, len(entry), len(proof))
	fmt.Printf("tiles fetched %d\n", len(reader.fetched))

	if *all {
		if err := checkAll(s, tree); err != nil {
			fail("%v", err)
		}
	}

	if *old != "" {
		sizeText, rootText, ok := strings.Cut(*old, ":")
		oldSize, err1 := strconv.ParseInt(sizeText, 10, 64)
		oldRoot, err2 := base64.StdEncoding.DecodeString(rootText)
		if !ok || err1 != nil || err2 != nil || len(oldRoot) != tlog.HashSize {
			fmt.Fprintln(os.Stderr, "-old: expected SIZE:BASE64ROOT")
			os.Exit(2)
		}
		var oldHash tlog.Hash
		copy(oldHash[:], oldRoot)
		treeProof, err := tlog.ProveTree(tree.N, oldSize, hr)
		if err != nil {
			fail("consistency: %v", err)
		}
		if err := tlog.CheckTree(treeProof, tree.N, tree.Hash, oldSize, oldHash); err != nil {
			fail("consistency with %d: %v", oldSize, err)
		}
		fmt.Printf("consistent with %d\n", oldSize)
	}
}
