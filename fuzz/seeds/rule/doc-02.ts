if( http.getPath() == "/old" ) http.redirect( "https://www.example.com/new" );
http.setHeader( "X-Client-Country", data.get( "geo:" . request.getRemoteIP() ) );
$status = http.request.get( "http://10.0.0.9/ping", "", 500 );   # $1 is the status
