# request rule
$path = http.getPath();
if( string.startsWith( $path, "/media/" ) ) {
   # Store the real path
   connection.data.set( "path", $path );
   # Convert the request to a lightweight HEAD for '/'
   http.setMethod( "HEAD" );
   http.setPath( "/" );
   pool.use( "Media Servers" );
}
