if( http.getpath() == "/testpage.jsp" ) {
   # We know this request is cacheable; remove the 'Cache-Control: no-cache'
   http.removeResponseHeader( "Cache-Control" );
}
