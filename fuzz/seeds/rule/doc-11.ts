$client = http.getHeader( "User-Agent" );
# Choose the pool based on the User-Agent
if( string.Contains( $client, "RealMedia" ) ) {
   pool.use( "Helix Servers" );
} else if ( string.Contains( $client, "QuickTime" ) ) {
   pool.use( "QuickTime Servers" );
} else if ( string.Contains( $client, "WMPlayer" ) ) {
   pool.use( "Windows Media Servers" );
}
