if( http.getResponseCode() >= 500 ) request.retry();
