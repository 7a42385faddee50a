# Phones and tablets get the mobile site; everyone else the default pool.
$ua = http.getHeader( "User-Agent" );
if( string.regexMatch( $ua, "iPhone|iPad|Android", "i" ) ) {
   http.setHeader( "X-Device", "mobile" );
   pool.use( "mobile" );
}
