// Command binsize tells where the bytes of a Go binary go, by package, from its ELF symbol table.
// Build the binary without -s (the symbols are what it reads); the figures are those of the code
// and data the stripped binary keeps, which has the same sections minus the symbol table.
//
//	go run ./scripts/binsize [-top N] BINARY
//
// Every symbol with a size in a section that is stored in the file is charged to one package:
// functions, closures (pkg.F.func1), methods (pkg.(*T).M), instantiations (pkg.F[go.shape.int]),
// compiler-made equality and hash functions (type:.eq.pkg.T), type descriptors and itabs
// (go:itab.*pkg.T,io.Writer goes to the package of the concrete type). Type descriptors of unnamed
// types (struct {...}, func(...)) and the symbols the linker makes are listed under "(...)" names.
// The per-function metadata in .gopclntab (function table, names, file:line, stack maps and the
// funcdata go:func.*) has no symbol per function: it is reported as it is, and the "with
// metadata" column spreads it over the packages in proportion to their code, an estimate, but a
// fair one, since it grows with the number and size of functions. What no symbol covers (type
// descriptors, string data, gc bitmaps) is reported per section.
package main

import (
	"debug/elf"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
)

func main() {
	top := flag.Int("top", 25, "how many packages to list; 0 for all")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: binsize [-top N] BINARY")
		os.Exit(2)
	}
	if err := run(flag.Arg(0), *top); err != nil {
		fmt.Fprintln(os.Stderr, "binsize:", err)
		os.Exit(1)
	}
}

type usage struct {
	name       string
	text, data int64 // code; read-only and writable data
	meta       int64 // estimated share of .gopclntab and go:func.*
}

func run(path string, top int) error {
	f, err := elf.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		return fmt.Errorf("%s has no symbol table (built with -ldflags=-s?): %w", path, err)
	}

	var fileSize, pclntab int64
	inSymbols := map[string]int64{}
	for _, s := range f.Sections {
		if s.Type != elf.SHT_NOBITS && s.Flags&elf.SHF_ALLOC != 0 {
			fileSize += int64(s.Size)
		}
		if s.Name == ".gopclntab" {
			pclntab = int64(s.Size)
		}
	}

	pkgs := map[string]*usage{}
	var attributed int64
	for _, s := range syms {
		if s.Size == 0 || int(s.Section) <= 0 || int(s.Section) >= len(f.Sections) {
			continue
		}
		sec := f.Sections[s.Section]
		if sec.Type == elf.SHT_NOBITS || sec.Flags&elf.SHF_ALLOC == 0 || sec.Name == ".gopclntab" {
			continue // .bss and .noptrbss take memory, not flash; go:func.* is inside .gopclntab
		}
		size := int64(s.Size)
		inSymbols[sec.Name] += size
		attributed += size
		p := pkgs[Package(s.Name)]
		if p == nil {
			p = &usage{name: Package(s.Name)}
			pkgs[p.name] = p
		}
		if sec.Flags&elf.SHF_EXECINSTR != 0 {
			p.text += size
		} else {
			p.data += size
		}
	}

	var list []*usage
	var text int64
	for _, p := range pkgs {
		list = append(list, p)
		text += p.text
	}
	for _, p := range list {
		if text > 0 {
			p.meta = pclntab * p.text / text
		}
	}
	sort.Slice(list, func(i, j int) bool {
		a, b := list[i].text+list[i].data+list[i].meta, list[j].text+list[j].data+list[j].meta
		if a != b {
			return a > b
		}
		return list[i].name < list[j].name
	})

	fmt.Printf("%s: %s in the sections a stripped binary keeps\n", path, kb(fileSize))
	fmt.Printf("%-20s %10s %14s %16s\n", "section", "size", "in symbols", "in no symbol")
	for _, s := range f.Sections {
		if s.Type == elf.SHT_NOBITS || s.Flags&elf.SHF_ALLOC == 0 || s.Size == 0 {
			continue
		}
		note := ""
		if s.Name == ".gopclntab" {
			note = "  per-function metadata, spread below"
		}
		fmt.Printf("%-20s %10s %14s %16s%s\n", s.Name, kb(int64(s.Size)), kb(inSymbols[s.Name]), kb(int64(s.Size)-inSymbols[s.Name]), note)
	}
	fmt.Println()
	fmt.Printf("%-52s %9s %9s %9s %16s %6s\n", "package", "code", "data", "total", "with metadata", "share")
	shown := list
	if top > 0 && len(shown) > top {
		shown = shown[:top]
	}
	for _, p := range shown {
		all := p.text + p.data + p.meta
		fmt.Printf("%-52s %9s %9s %9s %16s %5.1f%%\n", p.name, kb(p.text), kb(p.data), kb(p.text+p.data), kb(all), 100*float64(all)/float64(fileSize))
	}
	if rest := list[len(shown):]; len(rest) > 0 {
		var r usage
		for _, p := range rest {
			r.text += p.text
			r.data += p.data
			r.meta += p.meta
		}
		all := r.text + r.data + r.meta
		fmt.Printf("%-52s %9s %9s %9s %16s %5.1f%%\n", fmt.Sprintf("(%d more packages)", len(rest)), kb(r.text), kb(r.data), kb(r.text+r.data), kb(all), 100*float64(all)/float64(fileSize))
	}
	return nil
}

func kb(n int64) string { return fmt.Sprintf("%.1f KB", float64(n)/1000) }

// Package names the package a symbol belongs to.
func Package(sym string) string {
	s := sym
	for _, p := range []string{"type:.eq.", "type:.hash.", "type:.namedata.", "type:.importpath.", "type:"} {
		if t, ok := strings.CutPrefix(s, p); ok {
			s = t
			break
		}
	}
	if t, ok := strings.CutPrefix(s, "go:itab."); ok {
		// go:itab.*pkg.T,iface: the concrete type's package owns the method table.
		s, _, _ = strings.Cut(t, ",")
	} else if strings.HasPrefix(s, "go:") {
		return "(linker: " + strings.TrimRight(strings.SplitN(s, ".", 2)[0], "*") + ")"
	}
	// Peel composite type syntax down to the named element: *T, []T, [4]T, map[K]V, chan T.
	for {
		switch {
		case strings.HasPrefix(s, "*"):
			s = s[1:]
		case strings.HasPrefix(s, "[]"):
			s = s[2:]
		case strings.HasPrefix(s, "[") && strings.Contains(s, "]"):
			s = s[strings.Index(s, "]")+1:]
		case strings.HasPrefix(s, "map["):
			// map[K]V belongs with V: the key is most often a builtin type.
			depth, i := 0, len("map")
			for ; i < len(s); i++ {
				if s[i] == '[' {
					depth++
				} else if s[i] == ']' {
					depth--
					if depth == 0 {
						break
					}
				}
			}
			s = s[min(i+1, len(s)):]
		case strings.HasPrefix(s, "chan "), strings.HasPrefix(s, "<-chan "):
			s = s[strings.Index(s, " ")+1:]
		case strings.HasPrefix(s, "chan<- "):
			s = s[len("chan<- "):]
		default:
			goto named
		}
	}
named:
	if s == "" || strings.HasPrefix(s, "struct {") || strings.HasPrefix(s, "func(") || strings.HasPrefix(s, "interface {") || strings.HasPrefix(s, "noalg.") {
		return "(unnamed types)"
	}
	// The path ends at the first "." after the last "/" of the part before any type arguments or
	// receiver: github.com/miekg/dns.(*Msg).Pack, slices.SortFunc[go.shape.string], net/http..stmp_1.
	head := s
	if i := strings.IndexAny(head, "[("); i >= 0 {
		head = head[:i]
	}
	slash := strings.LastIndex(head, "/")
	dot := strings.Index(head[slash+1:], ".")
	if dot < 0 {
		if !strings.Contains(head, "/") && isBuiltin(head) {
			return "(builtin types)"
		}
		return head
	}
	return head[:slash+1+dot]
}

func isBuiltin(s string) bool {
	switch s {
	case "bool", "string", "error", "any", "int", "int8", "int16", "int32", "int64", "uint", "uint8",
		"uint16", "uint32", "uint64", "uintptr", "float32", "float64", "complex64", "complex128",
		"unsafe.Pointer", "uint8,", "rune", "byte":
		return true
	}
	return false
}
