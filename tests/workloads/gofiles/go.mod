module profile.test/gofiles

go 1.19
