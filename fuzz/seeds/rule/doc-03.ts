if( http.getResponseCode() == 404 ) http.setResponseHeader( "Cache-Control", "max-age=60" );
