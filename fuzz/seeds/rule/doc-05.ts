if( string.regexMatch( http.getPath(), "^/user/([0-9]+)" ) ) http.setHeader( "X-User", $1 );
if( string.ipmaskMatch( request.getRemoteIP(), "10.0.0.0/8" ) ) pool.select( "internal" );
