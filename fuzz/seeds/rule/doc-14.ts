if( http.getResponseHeader( "Content-Type" ) != "text/html" ) break;
$body = http.getResponseBody();
$html = '<div style="position:absolute;top:0;left:0;border:1px solid black;background:white">'.
        'Served by ' . connection.getNode() . '</div>';
$body = string.regexsub( $body, "(<body[^>]*>)", "$1\n".$html."\n", "i" );
http.setResponseBody( $body );
