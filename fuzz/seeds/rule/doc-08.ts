# Declarative rule "mobile", written as a script.
if (string.wildMatch(http.getHeader("User-Agent"), "*iPhone*")
   || string.contains(http.getHeader("User-Agent"), "Android")
   || !(string.ipmaskMatch(request.getRemoteIP(), "10.8.0.0/16"))) {
   http.setHeader("X-Device", "mobile");
   pool.use("mobile");
}
