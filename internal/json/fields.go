package json

import (
	"reflect"
	"slices"
	"strings"
	"sync"
)

// field is a struct field as JSON sees it.
type field struct {
	name   string
	index  []int // through embedded structs
	tagged bool
}

var fieldCache sync.Map // reflect.Type → []field

// cachedFields returns the JSON fields of struct type t, as encoding/json finds them: exported
// fields by their tag name (or Go name), "-" left out, the fields of embedded structs without a
// name promoted. Of fields with the same name the least deeply embedded wins, then a tagged one;
// a tie leaves the name out.
func cachedFields(t reflect.Type) []field {
	if f, ok := fieldCache.Load(t); ok {
		return f.([]field)
	}
	var all []field
	typeFields(t, nil, &all)
	byName := map[string][]int{}
	for i, f := range all {
		byName[f.name] = append(byName[f.name], i)
	}
	var fs []field
	for i, f := range all {
		if dominant(all, byName[f.name]) == i {
			fs = append(fs, f)
		}
	}
	f, _ := fieldCache.LoadOrStore(t, fs)
	return f.([]field)
}

// dominant returns which of the fields at idx (all of one name) is used, or -1 for none.
func dominant(all []field, idx []int) int {
	best, tie := idx[0], false
	for _, j := range idx[1:] {
		b, f := all[best], all[j]
		switch {
		case len(f.index) < len(b.index) || len(f.index) == len(b.index) && f.tagged && !b.tagged:
			best, tie = j, false
		case len(f.index) == len(b.index) && f.tagged == b.tagged:
			tie = true
		}
	}
	if tie {
		return -1
	}
	return best
}

func typeFields(t reflect.Type, index []int, all *[]field) {
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		idx := append(slices.Clone(index), i)
		if sf.Anonymous && name == "" {
			ft := sf.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				typeFields(ft, idx, all)
				continue
			}
		}
		if !sf.IsExported() {
			continue
		}
		tagged := name != ""
		if !tagged {
			name = sf.Name
		}
		*all = append(*all, field{name: name, index: idx, tagged: tagged})
	}
}

func findField(fs []field, name string) *field {
	for i := range fs {
		if fs[i].name == name {
			return &fs[i]
		}
	}
	return nil
}
