module profile.test/goserve

go 1.19
