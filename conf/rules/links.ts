# The seeds' Example 2: rewrite intranet links in HTML pages only; other
# responses stream through untouched.
$type = http.getResponseHeader( "Content-Type" );
if( !string.startsWith( $type, "text/html" ) ) break;
$body = http.getResponseBody();
$body = string.replaceAll( $body, "http://intranet.mycorp.com/", "https://extranet.mycorp.com/" );
http.setResponseBody( $body );
