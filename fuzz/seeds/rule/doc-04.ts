if( http.getCookie( "beta" ) == "1" ) pool.use( "web", "10.0.0.7:80" );
connection.setIdempotent( http.getMethod() == "PUT" );
if( http.getResponseCode() >= 500 ) request.retry();
