$type = http.getResponseHeader( "Content-Type" );
if( $type != "text/html" ) break; # Stop processing this rule
$res = http.request.get( "http://127.0.0.1:PORT/news?v=1.0&q=Riverbed" );
$r = json.deserialize( $res );
$rs = $r['responseData']['results'];
$html .= "<ul>\n";
foreach( $e in $rs ) {
   $html .= '<li>' . '<a href="'.$e['unescapedUrl'].'">'.$e['titleNoFormatting'].'</a>'. '</li>';
}
$html .= "</ul>\n";
$body = http.getResponseBody();
$body = string.replace( $body, "<!--RESULTS-->", $html);
http.setResponseBody( $body );
