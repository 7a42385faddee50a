$url = http.getResponseHeader( "Content-Type" ); if( !string.startsWith( $url, "text/html" ) ) break;
$response = http.getResponseBody();
$response = string.replaceAll( $response, "http://intranet.mycorp.com/", "https://extranet.mycorp.com/" );
http.setResponseBody( $response );
