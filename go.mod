module github.com/delvedns/delve

go 1.26.8

require (
	github.com/digineo/go-uci/v2 v2.0.0-20231120164223-60c14814b8fe
	github.com/gorilla/websocket v1.5.3
	github.com/miekg/dns v1.1.73
	golang.org/x/net v0.57.0
	golang.org/x/sys v0.47.0
)
